"""capture_diagnostics: the pod's recent Events and container statuses, for the humans who look next.

Stage: act (reads only). Runbook RB-010 investigation: what `kubectl describe pod` would show, put into the
notice's detail. Must not write anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from responder.kube import client, errors, fetching

__all__ = ["capture"]


def _statuses(pod: Mapping[str, Any]) -> list[str]:
    lines = []
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        state = next(iter((status.get("state") or {}).keys()), "unknown")
        last = (status.get("lastState") or {}).get("terminated") or {}
        line = f"container {status.get('name')}: {state}, restarts {status.get('restartCount', 0)}"
        if last:
            line += f", last terminated {last.get('reason')} (exit {last.get('exitCode')}) at {last.get('finishedAt')}"
        lines.append(line)
    return lines


async def capture(
    kube: client.Kube, *, namespace: str, pod_name: str | None, pod: Mapping[str, Any] | None, events: int
) -> str:
    """A plain-text report; never raises for a cluster error (it is reported in the text instead)."""
    if not pod_name:
        return "no pod named by the alert: no diagnostics"
    lines = [f"pod {namespace}/{pod_name}:"]
    lines += _statuses(pod) if pod is not None else ["the pod no longer exists"]
    try:
        recent = await fetching.pod_events(kube, namespace, pod_name, limit=events)
    except errors.KubeError as e:
        lines.append(f"events unavailable: {e.message}")
        return "\n".join(lines)
    for event in recent:
        when = event.get("lastTimestamp") or event.get("eventTime") or ""
        lines.append(f"{when} {event.get('type', '')} {event.get('reason', '')}: {event.get('message', '')}")
    if not recent:
        lines.append("no recent events")
    return "\n".join(lines)
