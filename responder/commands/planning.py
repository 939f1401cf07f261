"""`oom-responder plan --config FILE PAYLOAD.json`: what the service would do with a webhook payload.

For every alert it prints the kind, occurrence id, playbook, target and action, or why nothing would be done
(unmapped alert name, no playbook, resolved, duplicate within the payload, labels missing). It never writes
anything anywhere. Planning from labels is the base (and the fallback the service uses when no cluster is
configured); when a cluster is reachable, each routed alert is also previewed against live state with the
service's own read path (`Processor.preview`): owner lookup, "is it still true", the concrete change, the
guardrail that would block it, and the server-side dry-run admission check.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from typing import Any

from responder.logic import normalizing, routing, sorting
from responder.logic.actions import scheduled_restart
from responder.models import actions, alerts, decisions, follow_ups, settings, targets

__all__ = [
    "KindPlan",
    "LabelPlan",
    "LivePlan",
    "add_arguments",
    "missing_labels_note",
    "plan_for_kind",
    "plan_from_labels",
    "plan_payload",
    "preview_live",
    "run",
]


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
    schedules: tuple[str, ...] = ()
    """The restart schedules the playbook would create (scheduled_restart), in words."""
    verdicts: str | None = None
    """When the mitigation would be judged again (follow_up.horizons_seconds), in words."""
    reason: str | None = None
    """Why nothing would be done (a decisions.Reason value); None when an action is planned."""
    note: str = ""
    live: LivePlan | None = None
    """The decision from live cluster state, when a cluster was consulted."""


@dataclasses.dataclass(frozen=True)
class LivePlan:
    """What the service would decide right now, from the cluster (`Processor.preview`)."""

    allowed: bool
    reason: str
    detail: str = ""
    guardrail: str | None = None
    target: str | None = None
    action: str | None = None
    from_value: str | None = None
    to_value: str | None = None
    skipped: tuple[str, ...] = ()
    """Actions that did not apply, as "action: reason"."""
    analysis: str | None = None
    """The workload's memory history in one line (with `prometheus:`)."""
    playbook: str | None = None
    """The playbook the memory pattern routed the alert to, when it is not the one the labels chose."""


def _fits(action: settings.Action, kind: targets.WorkloadKind) -> bool:
    # A pod named by the alert is only a stand-in: its owner, looked up live, is what the action must fit.
    return kind is targets.WorkloadKind.POD or kind in actions.traits_of(action).kinds


@dataclasses.dataclass(frozen=True, slots=True)
class KindPlan:
    """What a playbook would do for any target of one kind: the part of a label plan that is not per alert."""

    action: str | None = None
    fallbacks: tuple[str, ...] = ()
    additional: tuple[str, ...] = ()
    schedules: tuple[str, ...] = ()
    verdicts: str | None = None
    reason: str | None = None
    note: str = ""


def plan_for_kind(
    playbook: settings.Playbook, *, kind: targets.WorkloadKind, config: settings.Settings
) -> KindPlan:
    """The plan of `playbook` for a target of `kind`, as far as labels tell.

    It depends on nothing else of the alert, so a caller planning many alerts computes it once per
    (playbook, kind): the service without a cluster does, for every alert it is sent.
    """
    main = [spec.action for spec in playbook.actions if actions.traits_of(spec.action).mutating]
    fitting = [action for action in main if _fits(action, kind)]
    additional = tuple(
        spec.action.value for spec in playbook.actions if not actions.traits_of(spec.action).mutating
    )
    note = "planned from labels only; live state, guardrails and the owner lookup may change it"
    if kind is targets.WorkloadKind.POD:
        note = "target is the pod; its owning workload is looked up in the cluster; " + note
    if not fitting and not additional:
        return KindPlan(reason=decisions.Reason.NOT_SCALABLE.value, note="no action fits the target")
    schedules = tuple(
        scheduled_restart.describe_options(spec.scheduled_restart)
        for spec in playbook.actions
        if spec.scheduled_restart is not None and _fits(spec.action, kind)
    )
    verdicts = None
    if config.follow_up.enabled and (fitting or schedules):
        labels = ", ".join(follow_ups.horizon_label(s) for s in config.follow_up.horizons_seconds)
        verdicts = f"at {labels} after the mitigation (runbook Step 6), then the incident is closed if all are stable"
    return KindPlan(
        action=fitting[0].value if fitting else None,
        fallbacks=tuple(action.value for action in fitting[1:]),
        additional=additional,
        schedules=schedules,
        verdicts=verdicts,
        note=note,
    )


def missing_labels_note(config: settings.Settings) -> str:
    """Why an alert without a namespace, or without a pod or workload, cannot be planned."""
    names = config.alerts
    return (
        f"needs the {names.namespace_label!r} label and {names.pod_label!r} or {names.workload_name_label!r}"
    )


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
            base, reason=decisions.Reason.MISSING_LABELS.value, note=missing_labels_note(config)
        )
    kind_plan = plan_for_kind(playbook, kind=target.kind, config=config)
    return dataclasses.replace(
        base,
        target=target.key,
        action=kind_plan.action,
        fallbacks=kind_plan.fallbacks,
        additional=kind_plan.additional,
        schedules=kind_plan.schedules,
        verdicts=kind_plan.verdicts,
        reason=kind_plan.reason,
        note=kind_plan.note,
    )


def plan_payload(payload: alerts.WebhookPayload, *, config: settings.Settings) -> list[LabelPlan]:
    """One plan per alert of the payload, in order."""
    plans: list[LabelPlan] = []
    for one in sorting.sort_payload(payload, settings=config):
        alert = one.alert
        alertname = alert.labels.get("alertname", "")
        event = one.event
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
        if one.verdict is sorting.Verdict.DUPLICATE:
            plans.append(
                dataclasses.replace(
                    base,
                    reason=decisions.Reason.DUPLICATE.value,
                    note="same occurrence earlier in this payload",
                )
            )
            continue
        if one.refusal is not None:
            plans.append(dataclasses.replace(base, reason=one.refusal.reason.value, note=one.refusal.detail))
            continue
        playbook = one.playbook
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


async def preview_live(
    plans: Sequence[LabelPlan], *, payload: alerts.WebhookPayload, config: settings.Settings
) -> list[LabelPlan]:
    """Add the live decision to every routed firing alert. Raises `connecting.NoCluster` when none is
    configured."""
    import datetime  # noqa: PLC0415

    from responder import metrics as metrics_mod  # noqa: PLC0415
    from responder.commands import connecting  # noqa: PLC0415
    from responder.logic import analysing  # noqa: PLC0415
    from responder.models import work  # noqa: PLC0415

    metrics = metrics_mod.Metrics()
    kube = await connecting.connect(config, metrics=metrics)
    processor = None
    try:
        processor = connecting.processor_on(kube, config, metrics=metrics, notifiers=_NoNotices())
        events = {
            event.occurrence_id: event
            for alert in payload.alerts
            if (event := normalizing.normalize(alert, payload=payload, settings=config)) is not None
        }
        now = datetime.datetime.now(datetime.UTC)
        previewed: list[LabelPlan] = []
        for plan in plans:
            event = events.get(plan.occurrence_id or "")
            playbook = next((p for p in config.playbooks if p.name == plan.playbook), None)
            if plan.reason is not None or event is None or playbook is None:
                previewed.append(plan)
                continue
            item = work.WorkItem(
                event=event, playbook=playbook, received_at=now, queue_key=plan.queue_key or ""
            )
            found = await processor.preview(item)
            live = LivePlan(
                allowed=found.decision.allowed,
                reason=found.decision.reason.value,
                detail=found.decision.detail,
                guardrail=found.decision.guardrail.value if found.decision.guardrail else None,
                target=found.target.key if found.target else None,
                action=found.plan.action.value if found.plan else None,
                from_value=found.plan.from_value if found.plan else None,
                to_value=found.plan.to_value if found.plan else None,
                skipped=tuple(
                    f"{action.value}: {why.reason.value} {why.detail}".strip()
                    for action, why in found.skipped
                ),
                analysis=analysing.summarize(found.analysis) if found.analysis is not None else None,
                playbook=found.playbook,
            )
            previewed.append(dataclasses.replace(plan, live=live))
        return previewed
    finally:
        if processor is not None:
            await processor.close(1.0)
        await kube.close()


class _NoNotices:
    """`plan` tells nobody anything: previews never notify."""

    def notify(self, notice: object) -> None:
        return None


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
            fields.extend(("schedule", schedule) for schedule in plan.schedules)
            if plan.verdicts:
                fields.append(("verdicts", plan.verdicts))
        else:
            fields.append(("nothing to do", plan.reason))
        if plan.note:
            fields.append(("note", plan.note))
        if plan.live is not None:
            live = plan.live
            verdict = "would act" if live.allowed else f"would not act: {live.reason}"
            if live.guardrail:
                verdict += f" (guardrail {live.guardrail})"
            fields.append(("live", verdict))
            fields.append(("live target", live.target))
            fields.append(("memory", live.analysis))
            if live.playbook:
                fields.append(("routed by pattern to", live.playbook))
            if live.action:
                fields.append(("live action", f"{live.action} {live.from_value} → {live.to_value}"))
            fields.extend(("skipped", skipped) for skipped in live.skipped)
            if live.detail:
                fields.append(("why", live.detail))
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
    parser.add_argument(
        "--labels-only",
        action="store_true",
        help="do not consult the cluster even when one is configured",
    )


def run(args: argparse.Namespace) -> int:
    import pydantic  # noqa: PLC0415

    from responder import config as config_mod  # noqa: PLC0415

    config = config_mod.load_for_command(args.config)
    if config is None:
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
    source = "planned from labels only (no cluster consulted, nothing written)"
    if not args.labels_only:
        import asyncio  # noqa: PLC0415

        from responder.commands import connecting  # noqa: PLC0415
        from responder.kube import client, errors  # noqa: PLC0415

        try:
            plans = asyncio.run(preview_live(plans, payload=payload, config=config))
            source = "previewed against the live cluster (nothing written)"
        except client.UnusableCredentials as e:
            # Configured but broken: saying "no cluster" would pass a label-only plan off as the answer.
            print(f"cluster: kubernetes credentials are configured but unusable: {e}", file=sys.stderr)
            return 1
        except connecting.NoCluster:
            source += "; no cluster is configured"
        except errors.KubeError as e:
            print(f"cluster: {e.message}", file=sys.stderr)
            return 1
    if args.output == "json":
        print(json.dumps([dataclasses.asdict(plan) for plan in plans], indent=2))
    else:
        print(f"mode: {config.mode.value}; {source}")
        print(render_text(plans))
    return 0
