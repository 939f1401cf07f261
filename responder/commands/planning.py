"""`oom-responder plan --config FILE PAYLOAD.json`: what the service would do with a webhook payload.

For every alert it prints the kind, occurrence id, playbook, target and action, or why nothing would be done
(unmapped alert name, no playbook, resolved, duplicate within the payload, labels missing). It never writes
anything anywhere. This module plans from labels only; it is also the fallback the service uses when no
cluster is available.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from responder.logic import deduplicating, normalizing, routing
from responder.models import alerts, decisions, settings, targets

__all__ = ["LabelPlan", "add_arguments", "plan_from_labels", "plan_payload", "run"]


@dataclasses.dataclass(frozen=True)
class LabelPlan:
    """What would happen to one alert, as far as its labels tell."""

    alertname: str
    status: str
    kind: str | None = None
    occurrence_id: str | None = None
    queue_key: str | None = None
    playbook: str | None = None
    target: str | None = None
    action: str | None = None
    """The first action of the playbook that fits the target as the labels describe it."""
    fallbacks: tuple[str, ...] = ()
    """Later actions, tried if the first one does not apply once live state is known."""
    additional: tuple[str, ...] = ()
    """capture_diagnostics / escalate: carried out in addition to the action."""
    reason: str | None = None
    """Why nothing would be done (a decisions.Reason value); None when an action is planned."""
    note: str = ""


# Actions that cannot apply to a workload kind: a DaemonSet runs one pod per node, a Job is not scaled.
_UNFIT: dict[targets.WorkloadKind, frozenset[settings.Action]] = {
    targets.WorkloadKind.DAEMON_SET: frozenset({settings.Action.SCALE_OUT}),
    targets.WorkloadKind.JOB: frozenset({settings.Action.SCALE_OUT, settings.Action.ROLLOUT_RESTART}),
}
_ADDITIONAL = frozenset({settings.Action.CAPTURE_DIAGNOSTICS, settings.Action.ESCALATE})


def plan_from_labels(
    event: alerts.AlertEvent, *, playbook: settings.Playbook, config: settings.Settings
) -> LabelPlan:
    """The plan for a routed, firing event, from its labels alone."""
    base = LabelPlan(
        alertname=event.alertname,
        status=event.status.value,
        kind=event.kind.value,
        occurrence_id=event.occurrence_id,
        queue_key=routing.queue_key(event, settings=config.alerts),
        playbook=playbook.name,
    )
    target = routing.target_from_labels(event, settings=config.alerts)
    if target is None:
        return dataclasses.replace(
            base,
            reason=decisions.Reason.MISSING_LABELS.value,
            note=f"needs the {config.alerts.namespace_label!r} label and {config.alerts.pod_label!r} "
            f"or {config.alerts.workload_name_label!r}",
        )
    unfit = _UNFIT.get(target.kind, frozenset())
    main = [spec.action for spec in playbook.actions if spec.action not in _ADDITIONAL]
    fitting = [action for action in main if action not in unfit]
    additional = tuple(spec.action.value for spec in playbook.actions if spec.action in _ADDITIONAL)
    note = "planned from labels only; live state, guardrails and the owner lookup may change it"
    if target.kind is targets.WorkloadKind.POD:
        note = "target is the pod; its owning workload is looked up in the cluster; " + note
    if not fitting and not additional:
        return dataclasses.replace(
            base,
            target=target.key,
            reason=decisions.Reason.NOT_SCALABLE.value,
            note="no action fits the target",
        )
    return dataclasses.replace(
        base,
        target=target.key,
        action=fitting[0].value if fitting else None,
        fallbacks=tuple(action.value for action in fitting[1:]),
        additional=additional,
        note=note,
    )


def plan_payload(payload: alerts.WebhookPayload, *, config: settings.Settings) -> list[LabelPlan]:
    """One plan per alert of the payload, in order."""
    plans: list[LabelPlan] = []
    seen: set[str] = set()
    for alert in payload.alerts:
        alertname = alert.labels.get("alertname", "")
        event = normalizing.normalize(alert, payload=payload, settings=config)
        if event is None:
            plans.append(
                LabelPlan(
                    alertname=alertname,
                    status=alert.status.value,
                    reason=decisions.Reason.NO_PLAYBOOK.value,
                    note=f"alert name {alertname!r} is not mapped to a kind (alerts.names)",
                )
            )
            continue
        base = LabelPlan(
            alertname=alertname,
            status=event.status.value,
            kind=event.kind.value,
            occurrence_id=event.occurrence_id,
            queue_key=routing.queue_key(event, settings=config.alerts),
        )
        key = deduplicating.occurrence_key(event)
        if key in seen:
            plans.append(
                dataclasses.replace(
                    base,
                    reason=decisions.Reason.DUPLICATE.value,
                    note="same occurrence earlier in this payload",
                )
            )
            continue
        seen.add(key)
        playbook = routing.route(event, config.playbooks)
        if playbook is None:
            plans.append(
                dataclasses.replace(
                    base,
                    reason=decisions.Reason.NO_PLAYBOOK.value,
                    note="no playbook answers this kind and labels",
                )
            )
            continue
        if event.status is alerts.AlertStatus.RESOLVED:
            plans.append(
                dataclasses.replace(
                    base,
                    playbook=playbook.name,
                    reason=decisions.Reason.RESOLVED.value,
                    note="notifications only; resolved alerts never trigger a mitigation",
                )
            )
            continue
        plans.append(plan_from_labels(event, playbook=playbook, config=config))
    return plans


def render_text(plans: Sequence[LabelPlan]) -> str:
    lines: list[str] = []
    for number, plan in enumerate(plans):
        head = f"[{number}] {plan.alertname or '(no alertname)'} ({plan.status})"
        lines.append(head)
        fields: list[tuple[str, Any]] = [
            ("kind", plan.kind),
            ("occurrence", plan.occurrence_id),
            ("playbook", plan.playbook),
            ("target", plan.target),
        ]
        if plan.reason is None:
            fields.append(("action", plan.action or "none"))
            if plan.fallbacks:
                fields.append(("fallbacks", ", ".join(plan.fallbacks)))
            if plan.additional:
                fields.append(("also", ", ".join(plan.additional)))
        else:
            fields.append(("nothing to do", plan.reason))
        if plan.note:
            fields.append(("note", plan.note))
        lines.extend(f"    {name}: {value}" for name, value in fields if value is not None)
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument(
        "--config", metavar="FILE", help="config file (default: $OOM_RESPONDER_CONFIG, else defaults)"
    )
    parser.add_argument("payload", metavar="PAYLOAD.json", help="an Alertmanager webhook body; - reads stdin")
    parser.add_argument(
        "--output", choices=("text", "json"), default="text", help="output format (default text)"
    )


def run(args: argparse.Namespace) -> int:
    import pydantic  # noqa: PLC0415

    from responder import config as config_mod  # noqa: PLC0415

    path = args.config or os.environ.get(config_mod.CONFIG_ENV)
    try:
        config = config_mod.load_settings(path)
    except config_mod.ConfigError as e:
        for problem in e.problems:
            print(f"config: {problem}", file=sys.stderr)
        return 2
    try:
        text = sys.stdin.read() if args.payload == "-" else open(args.payload, encoding="utf-8").read()  # noqa: SIM115
    except OSError as e:
        print(f"{args.payload}: cannot read: {e.strerror or e}", file=sys.stderr)
        return 2
    try:
        payload = alerts.WebhookPayload.model_validate_json(text)
    except pydantic.ValidationError as e:
        for problem in config_mod.describe_errors(e):
            print(f"{args.payload}: {problem}", file=sys.stderr)
        return 2
    plans = plan_payload(payload, config=config)
    if args.output == "json":
        print(json.dumps([dataclasses.asdict(plan) for plan in plans], indent=2))
    else:
        print(f"mode: {config.mode.value}; planned from labels only (no cluster consulted, nothing written)")
        print(render_text(plans))
    return 0
