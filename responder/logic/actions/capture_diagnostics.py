"""capture_diagnostics, the pure part: the report humans read next, from the pod and its recent Events. Pure.

Stage: investigate. Runbook RB-010 investigation: what `kubectl describe pod` would show, put into the
notice's detail. `responder.engine.actions.capture_diagnostics` reads the Events; this only formats.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from responder.logic.actions import base
from responder.models import decisions

__all__ = ["PART", "describe", "report"]

Body = Mapping[str, Any]


def _statuses(pod: Body) -> list[str]:
    lines = []
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        state = next(iter((status.get("state") or {}).keys()), "unknown")
        last = (status.get("lastState") or {}).get("terminated") or {}
        line = f"container {status.get('name')}: {state}, restarts {status.get('restartCount', 0)}"
        if last:
            line += f", last terminated {last.get('reason')} (exit {last.get('exitCode')}) at {last.get('finishedAt')}"
        lines.append(line)
    return lines


def report(
    *, namespace: str, pod_name: str, pod: Body | None, events: Sequence[Body] | None, events_error: str = ""
) -> str:
    """A plain-text report: container states and the recent Events (or why they are missing)."""
    lines = [f"pod {namespace}/{pod_name}:"]
    lines += _statuses(pod) if pod is not None else ["the pod no longer exists"]
    if events is None:
        lines.append(f"events unavailable: {events_error}")
        return "\n".join(lines)
    for event in events:
        when = event.get("lastTimestamp") or event.get("eventTime") or ""
        lines.append(f"{when} {event.get('type', '')} {event.get('reason', '')}: {event.get('message', '')}")
    if not events:
        lines.append("no recent events")
    return "\n".join(lines)


def describe(plan: decisions.Plan) -> str:
    return f"diagnostics of {plan.target.namespace}/{plan.pod}"


PART = base.PurePart(describe=describe)
