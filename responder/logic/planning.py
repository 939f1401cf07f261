"""Planning a mitigation from a snapshot of live state. Pure.

Stage: plan (second half). A purely computational module with no side-effects: given the top-level
workload and what surrounds it (the alerted pod, an HPA, a VPA's update mode, the ledger), the playbook,
the settings and the time, it picks the first action of the playbook that applies, computes the new value
(memory limit, replicas, HPA minReplicas, restart stamp) and builds the exact PATCH bodies the engine
sends. It never calls the API, never reads the clock and never decides policy: guardrails
(`responder.logic.guarding`) judge the resulting `decisions.Plan`.

Every body that writes a workload carries the ledger annotation and `metadata.resourceVersion`, so the
change and its record are one atomic write that fails with 409 when someone else wrote first.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from responder.logic import guarding
from responder.models import alerts, decisions, ledgers, quantities, settings, targets

__all__ = [
    "MAX_MEMORY_ANNOTATION",
    "MAX_REPLICAS_ANNOTATION",
    "RESTARTED_AT_ANNOTATION",
    "MemoryChange",
    "Mutation",
    "Proposal",
    "WorkloadSnapshot",
    "choose_container",
    "dry_run_pod",
    "ledger_patch",
    "memory_revert_patch",
    "propose",
    "raised_limit",
    "scaled_replicas",
    "still_raised",
    "with_result",
]

Body = Mapping[str, Any]
Patch = dict[str, Any]

MAX_MEMORY_ANNOTATION = "oom-responder.io/max-memory"
MAX_REPLICAS_ANNOTATION = "oom-responder.io/max-replicas"
RESTARTED_AT_ANNOTATION = "kubectl.kubernetes.io/restartedAt"
_MI = 2**20
_STEP = re.compile(r"^\+?([0-9]+)(%?)$")
_TEMPLATED = (
    targets.WorkloadKind.DEPLOYMENT,
    targets.WorkloadKind.STATEFUL_SET,
    targets.WorkloadKind.DAEMON_SET,
)
_SCALABLE = (targets.WorkloadKind.DEPLOYMENT, targets.WorkloadKind.STATEFUL_SET)


@dataclasses.dataclass(frozen=True, slots=True)
class WorkloadSnapshot:
    """Everything read from the cluster about one target, at one resourceVersion."""

    target: targets.Target
    workload: Body
    """The top-level object (for a bare Pod: the pod itself), as the API's JSON."""
    pod: Body | None = None
    """The alerted pod, or None when it is gone (or the alert named none)."""
    ledger: tuple[ledgers.LedgerEntry, ...] = ()
    hpa: Body | None = None
    """The HorizontalPodAutoscaler whose scaleTargetRef is the workload, if any."""
    vpa_update_mode: str | None = None
    """updateMode of a VerticalPodAutoscaler targeting the workload; None when there is none (or no VPA CRD)."""

    @property
    def annotations(self) -> Mapping[str, str]:
        return dict(self.workload.get("metadata", {}).get("annotations") or {})

    @property
    def resource_version(self) -> str:
        return str(self.workload.get("metadata", {}).get("resourceVersion", ""))

    @property
    def template_spec(self) -> Body:
        if self.target.kind is targets.WorkloadKind.POD:
            return dict(self.workload.get("spec") or {})
        return dict((self.workload.get("spec") or {}).get("template", {}).get("spec") or {})


@dataclasses.dataclass(frozen=True, slots=True)
class MemoryChange:
    container: str
    limit_from: int | None
    limit_to: int
    request_from: int | None
    request_to: int | None
    """None: the request is left as it is."""


@dataclasses.dataclass(frozen=True, slots=True)
class Mutation:
    """A planned write, with the exact bodies to send."""

    plan: decisions.Plan
    entry: ledgers.LedgerEntry
    workload_patch: Patch
    """Strategic merge patch for the workload: the change (if it lives on the workload), the ledger and the
    resourceVersion precondition."""
    memory: MemoryChange | None = None
    replicas: int | None = None
    """New spec.replicas, or new HPA minReplicas when `hpa_patch` is set."""
    hpa_name: str | None = None
    hpa_patch: Patch | None = None
    evict_pod: str | None = None

    @property
    def changes_workload(self) -> bool:
        """Whether the workload patch carries the change itself (and a rollout must be verified)."""
        return self.hpa_patch is None and self.evict_pod is None


@dataclasses.dataclass(frozen=True, slots=True)
class Proposal:
    mutation: Mutation | None
    """The first action of the playbook that applies, or None."""
    skipped: tuple[tuple[settings.Action, decisions.Decision], ...] = ()
    """Actions tried before it (or instead of it) that did not apply, with why."""
    extras: tuple[settings.ActionSpec, ...] = ()
    """capture_diagnostics and escalate: always carried out in addition."""


# ---- arithmetic -------------------------------------------------------------------------------------


def raised_limit(current: int, *, ratio: float, min_step: int) -> int:
    """`max(current + min_step, current × ratio)`, rounded up to a whole MiB (the VPA's margin and step)."""
    wanted = max(current + min_step, math.ceil(current * ratio))
    return math.ceil(wanted / _MI) * _MI


def scaled_replicas(current: int, step: str) -> int:
    """`+N` adds N; `+P%` adds P % of current, rounded up, at least one."""
    match = _STEP.match(step.strip())
    if not match:
        raise ValueError(f'not a scale step (want "+N" or "+P%"): {step!r}')
    amount = int(match.group(1))
    if match.group(2):
        return current + max(1, math.ceil(current * amount / 100))
    return current + amount


# ---- bodies ----------------------------------------------------------------------------------------


def ledger_patch(snapshot: WorkloadSnapshot, entries: Sequence[ledgers.LedgerEntry]) -> Patch:
    """The ledger annotation plus the resourceVersion precondition: a 409 if the workload changed since read."""
    return {
        "metadata": {
            "resourceVersion": snapshot.resource_version,
            "annotations": {ledgers.ANNOTATION: ledgers.dump(entries)},
        }
    }


def _merge(base: Patch, extra: Mapping[str, Any]) -> Patch:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def _template_patch(spec_patch: Patch) -> Patch:
    return {"spec": {"template": spec_patch}}


def _memory_container_patch(change: MemoryChange, *, limit: int, request: int | None) -> Patch:
    # Strategic merge patch: containers merge by name, so only this container's memory changes and the
    # other containers (and this one's CPU) are left alone. A JSON merge patch would replace the whole list.
    resources: Patch = {"limits": {"memory": quantities.format_bytes(limit)}}
    if request is not None:
        resources["requests"] = {"memory": quantities.format_bytes(request)}
    return {"spec": {"containers": [{"name": change.container, "resources": resources}]}}


def memory_revert_patch(change: MemoryChange) -> Patch:
    """The template change that writes the previous values back (automatic revert of a failed raise)."""
    if change.limit_from is None:
        # There was no limit before: remove it again ("$patch" semantics of strategic merge: null deletes).
        container: Patch = {"name": change.container, "resources": {"limits": {"memory": None}}}
        if change.request_to is not None:
            container["resources"]["requests"] = {"memory": _format_or_none(change.request_from)}
        return _template_patch({"spec": {"containers": [container]}})
    return _template_patch(
        _memory_container_patch(
            change,
            limit=change.limit_from,
            request=change.request_from if change.request_to is not None else None,
        )
    )


def still_raised(snapshot: WorkloadSnapshot, change: MemoryChange) -> bool:
    """Whether the container still has the limit the raise wrote: a revert must not undo a later change
    (a person's, or another raise) made while the rollout was being followed."""
    for container in snapshot.template_spec.get("containers") or []:
        if container.get("name") == change.container:
            raw = ((container.get("resources") or {}).get("limits") or {}).get("memory")
            try:
                return raw is not None and quantities.parse_bytes(raw) == change.limit_to
            except ValueError:
                return False
    return False


def _format_or_none(value: int | None) -> str | None:
    return None if value is None else quantities.format_bytes(value)


def with_result(
    entries: Sequence[ledgers.LedgerEntry], entry: ledgers.LedgerEntry, result: decisions.Outcome
) -> list[ledgers.LedgerEntry]:
    """The ledger with `entry` (matched by action, occurrence and time) marked with a verification result."""
    updated: list[ledgers.LedgerEntry] = []
    key = (entry.action, entry.occurrence, entry.at)
    for existing in entries:
        same = (existing.action, existing.occurrence, existing.at) == key
        updated.append(existing.model_copy(update={"result": result}) if same else existing)
    return updated


def dry_run_pod(snapshot: WorkloadSnapshot, change: MemoryChange) -> Patch:
    """A Pod built from the workload's template with the new memory, for a server-side dry-run create.

    ResourceQuota and LimitRange are enforced on pods, not on the workload: a raise can be accepted on the
    Deployment and then fail when the ReplicaSet creates pods (FailedCreate). Creating this pod with
    dryRun=All runs the same admission without persisting anything.
    """
    template = (snapshot.workload.get("spec") or {}).get("template") or {}
    metadata = template.get("metadata") or {}
    spec = dict(template.get("spec") or {})
    containers = []
    for original in spec.get("containers") or []:
        container = dict(original)
        if container.get("name") == change.container:
            resources = {key: dict(value) for key, value in (container.get("resources") or {}).items()}
            resources.setdefault("limits", {})["memory"] = quantities.format_bytes(change.limit_to)
            if change.request_to is not None:
                resources.setdefault("requests", {})["memory"] = quantities.format_bytes(change.request_to)
            container["resources"] = resources
        containers.append(container)
    spec["containers"] = containers
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": f"{snapshot.target.name[:40]}-oom-responder-check-",
            "namespace": snapshot.target.namespace,
            "labels": dict(metadata.get("labels") or {}),
        },
        "spec": spec,
    }


# ---- choosing ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class _Context:
    snapshot: WorkloadSnapshot
    event: alerts.AlertEvent
    playbook: str
    config: settings.Settings
    now: datetime.datetime
    identity: str
    thread: str | None

    def entry(
        self,
        action: settings.Action,
        *,
        from_value: str | None,
        to_value: str | None,
        container: str | None = None,
    ) -> ledgers.LedgerEntry:
        return ledgers.LedgerEntry(
            action=action,
            from_value=from_value,
            to_value=to_value,
            playbook=self.playbook,
            occurrence=self.event.occurrence_id,
            at=self.now,
            by=self.identity,
            container=container,
            thread=self.thread,
        )

    def plan(
        self,
        action: settings.Action,
        *,
        from_value: str | None,
        to_value: str | None,
        container: str | None = None,
        from_amount: int | None = None,
        to_amount: int | None = None,
    ) -> decisions.Plan:
        return decisions.Plan(
            playbook=self.playbook,
            action=action,
            target=self.snapshot.target,
            occurrence_id=self.event.occurrence_id,
            container=container,
            pod=self.event.pod,
            from_value=from_value,
            to_value=to_value,
            from_amount=from_amount,
            to_amount=to_amount,
        )

    def clamp(self, action: settings.Action, *, from_amount: int | None, to_amount: int) -> int:
        # The guard's own ceiling and step arithmetic, so that a formula overshooting yields a capped change
        # rather than a guardrail block (an unparsable annotation reads as a ceiling of 0).
        return guarding.clamp_amount(
            action=action,
            from_amount=from_amount,
            to_amount=to_amount,
            annotations=self.snapshot.annotations,
            settings=self.config,
            playbook=self.playbook,
        )

    def recorded(self, entry: ledgers.LedgerEntry, change: Patch | None = None) -> Patch:
        patch = ledger_patch(self.snapshot, ledgers.append(self.snapshot.ledger, entry))
        return _merge(patch, change) if change else patch


def _not_applicable(kind: targets.WorkloadKind, what: str) -> decisions.Decision:
    return decisions.Decision.refuse(
        decisions.Reason.NOT_SCALABLE, f"{what} does not apply to a {kind.value}"
    )


def choose_container(snapshot: WorkloadSnapshot, alerted: str | None) -> str | None:
    """The container to raise: the alert's, else the one the pod reports OOMKilled, else the only one."""
    names = [str(c.get("name")) for c in snapshot.template_spec.get("containers") or []]
    if alerted:
        return alerted if alerted in names else None
    if snapshot.pod is not None:
        for status in (snapshot.pod.get("status") or {}).get("containerStatuses") or []:
            for holder in (status.get("lastState") or {}, status.get("state") or {}):
                if (holder.get("terminated") or {}).get("reason") == "OOMKilled" and status.get(
                    "name"
                ) in names:
                    return str(status["name"])
    return names[0] if len(names) == 1 else None


def _raise_memory(ctx: _Context, options: settings.RaiseMemory) -> Mutation | decisions.Decision:
    snapshot = ctx.snapshot
    kind = snapshot.target.kind
    if kind not in _TEMPLATED:
        # A Job's template is immutable and a bare pod has no template; the rollout cannot carry a new limit.
        return _not_applicable(kind, "raise_memory")
    if options.check_vpa and snapshot.vpa_update_mode not in (None, "Off"):
        return decisions.Decision.refuse(
            decisions.Reason.VPA_MANAGED,
            f"a VerticalPodAutoscaler (updateMode {snapshot.vpa_update_mode}) manages its memory; not fighting it",
        )
    name = choose_container(snapshot, ctx.event.container)
    if name is None:
        return decisions.Decision.refuse(
            decisions.Reason.MISSING_LABELS,
            f"cannot tell which container to raise (alert container: {ctx.event.container!r})",
        )
    container = next(c for c in snapshot.template_spec.get("containers") or [] if c.get("name") == name)
    resources = container.get("resources") or {}
    raw_limit = (resources.get("limits") or {}).get("memory")
    raw_request = (resources.get("requests") or {}).get("memory")
    try:
        limit = None if raw_limit is None else quantities.parse_bytes(raw_limit)
        request = None if raw_request is None else quantities.parse_bytes(raw_request)
    except ValueError as e:
        return decisions.Decision.refuse(decisions.Reason.INVALID, f"container {name}: {e}")
    if limit is None:
        if options.skip_without_limit:
            return decisions.Decision.refuse(
                decisions.Reason.NO_MEMORY_LIMIT,
                f"container {name} has no memory limit (its OOM kills are the node's, not its own); "
                f"not adding one",
            )
        # First limit: min_step above the request (or min_step alone without a request).
        wanted = raised_limit(request or 0, ratio=options.ratio, min_step=options.min_step)
    else:
        wanted = raised_limit(limit, ratio=options.ratio, min_step=options.min_step)
    new_limit = ctx.clamp(settings.Action.RAISE_MEMORY, from_amount=limit, to_amount=wanted)
    if (limit is not None and new_limit <= limit) or (request is not None and new_limit < request):
        return decisions.Decision.refuse(
            decisions.Reason.AT_CEILING,
            f"container {name}: limit {_format_or_none(limit)}, request {_format_or_none(request)}; "
            f"the most allowed is {quantities.format_bytes(new_limit)}",
        )
    # Keep the request/limit relation: Guaranteed QoS (request == limit) stays Guaranteed; otherwise the
    # request (the scheduler's reservation) is left alone. No request means the API defaults it to the limit.
    new_request = new_limit if (request is not None and request == limit) else None
    change = MemoryChange(name, limit, new_limit, request, new_request)
    from_value = None if limit is None else quantities.format_bytes(limit)
    to_value = quantities.format_bytes(new_limit)
    entry = ctx.entry(settings.Action.RAISE_MEMORY, from_value=from_value, to_value=to_value, container=name)
    body = _template_patch(_memory_container_patch(change, limit=new_limit, request=new_request))
    return Mutation(
        plan=ctx.plan(
            settings.Action.RAISE_MEMORY,
            from_value=from_value,
            to_value=to_value,
            container=name,
            from_amount=limit,
            to_amount=new_limit,
        ),
        entry=entry,
        workload_patch=ctx.recorded(entry, body),
        memory=change,
    )


def _scale_out(ctx: _Context, options: settings.ScaleOut) -> Mutation | decisions.Decision:
    snapshot = ctx.snapshot
    kind = snapshot.target.kind
    if kind not in _SCALABLE:
        return _not_applicable(kind, "scale_out")
    spec = snapshot.workload.get("spec") or {}
    current = int(spec.get("replicas", 1))
    if snapshot.hpa is not None:
        # The HPA owns spec.replicas and would undo a direct scale at its next sync; raising its floor is the
        # way to add replicas it keeps.
        hpa_spec = snapshot.hpa.get("spec") or {}
        hpa_min = int(hpa_spec.get("minReplicas") or 1)
        hpa_max = int(hpa_spec.get("maxReplicas") or hpa_min)
        wanted = scaled_replicas(max(current, hpa_min), options.step)
        new_min = min(ctx.clamp(settings.Action.SCALE_OUT, from_amount=hpa_min, to_amount=wanted), hpa_max)
        if new_min <= hpa_min:
            if hpa_min >= hpa_max:
                return decisions.Decision.refuse(
                    decisions.Reason.HPA_AT_MAX, f"the HPA's minReplicas {hpa_min} is already its maxReplicas"
                )
            return decisions.Decision.refuse(
                decisions.Reason.AT_CEILING, f"the HPA's minReplicas {hpa_min} is at the ceiling"
            )
        hpa_meta = snapshot.hpa.get("metadata") or {}
        entry = ctx.entry(settings.Action.SCALE_OUT, from_value=str(hpa_min), to_value=str(new_min))
        return Mutation(
            plan=ctx.plan(
                settings.Action.SCALE_OUT,
                from_value=str(hpa_min),
                to_value=str(new_min),
                from_amount=hpa_min,
                to_amount=new_min,
            ),
            entry=entry,
            workload_patch=ctx.recorded(entry),
            replicas=new_min,
            hpa_name=str(hpa_meta.get("name")),
            # No resourceVersion precondition here: the HPA controller rewrites the object's status every sync,
            # so one would fail at random; the ledger entry on the workload (written first, under the
            # workload's resourceVersion) already makes the action happen once.
            hpa_patch={"spec": {"minReplicas": new_min}},
        )
    new = ctx.clamp(
        settings.Action.SCALE_OUT, from_amount=current, to_amount=scaled_replicas(current, options.step)
    )
    if new <= current:
        return decisions.Decision.refuse(
            decisions.Reason.AT_CEILING, f"{current} replicas, the most allowed is {new}"
        )
    entry = ctx.entry(settings.Action.SCALE_OUT, from_value=str(current), to_value=str(new))
    # spec.replicas is patched on the workload itself, not through the scale subresource, so the new count
    # and its ledger entry are one write under one resourceVersion precondition (a scale subresource
    # write cannot carry an annotation, which would make the record a second, separately failing write).
    return Mutation(
        plan=ctx.plan(
            settings.Action.SCALE_OUT,
            from_value=str(current),
            to_value=str(new),
            from_amount=current,
            to_amount=new,
        ),
        entry=entry,
        workload_patch=ctx.recorded(entry, {"spec": {"replicas": new}}),
        replicas=new,
    )


def _evict_pod(ctx: _Context) -> Mutation | decisions.Decision:
    snapshot = ctx.snapshot
    if snapshot.pod is None or not ctx.event.pod:
        return decisions.Decision.refuse(decisions.Reason.POD_GONE, f"pod {ctx.event.pod!r} no longer exists")
    if (snapshot.pod.get("metadata") or {}).get("deletionTimestamp"):
        return decisions.Decision.refuse(
            decisions.Reason.POD_GONE, f"pod {ctx.event.pod} is already terminating"
        )
    entry = ctx.entry(settings.Action.EVICT_POD, from_value=ctx.event.pod, to_value=None)
    return Mutation(
        plan=ctx.plan(settings.Action.EVICT_POD, from_value=ctx.event.pod, to_value=None),
        entry=entry,
        workload_patch=ctx.recorded(entry),
        evict_pod=ctx.event.pod,
    )


def _rollout_restart(ctx: _Context) -> Mutation | decisions.Decision:
    snapshot = ctx.snapshot
    kind = snapshot.target.kind
    if kind not in _TEMPLATED:
        return _not_applicable(kind, "rollout_restart")
    if (snapshot.workload.get("spec") or {}).get("paused"):
        return decisions.Decision.refuse(
            decisions.Reason.PAUSED_ROLLOUT, "the Deployment is paused: a restart would not roll out"
        )
    stamp = ctx.now.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    previous = (
        ((snapshot.workload.get("spec") or {}).get("template", {}).get("metadata") or {})
        .get("annotations", {})
        .get(RESTARTED_AT_ANNOTATION)
    )
    entry = ctx.entry(settings.Action.ROLLOUT_RESTART, from_value=previous, to_value=stamp)
    body = _template_patch({"metadata": {"annotations": {RESTARTED_AT_ANNOTATION: stamp}}})
    return Mutation(
        plan=ctx.plan(settings.Action.ROLLOUT_RESTART, from_value=previous, to_value=stamp),
        entry=entry,
        workload_patch=ctx.recorded(entry, body),
    )


def _paused(snapshot: WorkloadSnapshot, action: settings.Action) -> decisions.Decision | None:
    # A paused Deployment accepts template changes but does not roll them out: a raise or restart would be
    # recorded as done while no pod ever gets it.
    paused = bool((snapshot.workload.get("spec") or {}).get("paused"))
    if paused and action in (settings.Action.RAISE_MEMORY, settings.Action.ROLLOUT_RESTART):
        return decisions.Decision.refuse(
            decisions.Reason.PAUSED_ROLLOUT, f"the Deployment is paused: {action.value} would not roll out"
        )
    return None


def propose(
    *,
    snapshot: WorkloadSnapshot,
    event: alerts.AlertEvent,
    playbook: settings.Playbook,
    config: settings.Settings,
    now: datetime.datetime,
    identity: str,
    thread: str | None = None,
) -> Proposal:
    """The first action of `playbook` that applies to the target, its fallbacks' refusals, and the extras."""
    ctx = _Context(snapshot, event, playbook.name, config, now, identity, thread)
    skipped: list[tuple[settings.Action, decisions.Decision]] = []
    extras: list[settings.ActionSpec] = []
    chosen: Mutation | None = None
    for spec in playbook.actions:
        action = spec.action
        if action in (settings.Action.CAPTURE_DIAGNOSTICS, settings.Action.ESCALATE):
            extras.append(spec)
            continue
        if chosen is not None:
            continue
        result: Mutation | decisions.Decision
        paused = _paused(snapshot, action)
        if paused is not None:
            result = paused
        elif isinstance(spec.raise_memory, settings.RaiseMemory):
            result = _raise_memory(ctx, spec.raise_memory)
        elif isinstance(spec.scale_out, settings.ScaleOut):
            result = _scale_out(ctx, spec.scale_out)
        elif action is settings.Action.EVICT_POD:
            result = _evict_pod(ctx)
        else:
            result = _rollout_restart(ctx)
        if isinstance(result, Mutation):
            chosen = result
        else:
            skipped.append((action, result))
    return Proposal(mutation=chosen, skipped=tuple(skipped), extras=tuple(extras))
