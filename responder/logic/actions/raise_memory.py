"""raise_memory, the pure part: the new memory limit, its PATCH, the dry-run pod and the revert. Pure.

Stage: plan. Runbook RB-010 step 2, option A, sized like the Vertical Pod Autoscaler's OOM bump:
`new = max(current + min_step, current × ratio)`, rounded up to a whole MiB, capped by the ceilings and the
single-step guardrail; the request/limit relation is kept (Guaranteed QoS stays Guaranteed). Never calls the
API: `responder.engine.actions.raise_memory` sends what this plans.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from responder.logic.actions import base
from responder.models import actions, analyses, decisions, mutations, quantities

__all__ = [
    "PART",
    "MemoryChange",
    "choose_container",
    "describe",
    "dry_run_pod",
    "propose",
    "raised_limit",
    "revert_patch",
    "still_raised",
]

Patch = dict[str, Any]
_MI = 2**20


@dataclasses.dataclass(frozen=True, slots=True)
class MemoryChange(mutations.Change):
    container: str
    limit_from: int | None
    limit_to: int
    request_from: int | None
    request_to: int | None
    """None: the request is left as it is."""


def raised_limit(current: int, *, ratio: float, min_step: int) -> int:
    """`max(current + min_step, current × ratio)`, rounded up to a whole MiB (the VPA's margin and step)."""
    wanted = max(current + min_step, math.ceil(current * ratio))
    return math.ceil(wanted / _MI) * _MI


def choose_container(snapshot: mutations.WorkloadSnapshot, alerted: str | None) -> str | None:
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


def _format_or_none(value: int | None) -> str | None:
    return None if value is None else quantities.format_bytes(value)


def _container_patch(change: MemoryChange, *, limit: int, request: int | None) -> Patch:
    # Strategic merge patch: containers merge by name, so only this container's memory changes and the
    # other containers (and this one's CPU) are left alone. A JSON merge patch would replace the whole list.
    resources: Patch = {"limits": {"memory": quantities.format_bytes(limit)}}
    if request is not None:
        resources["requests"] = {"memory": quantities.format_bytes(request)}
    return {"spec": {"containers": [{"name": change.container, "resources": resources}]}}


def revert_patch(change: MemoryChange) -> Patch:
    """The template change that writes the previous values back (automatic revert of a failed raise)."""
    if change.limit_from is None:
        # There was no limit before: remove it again (strategic merge: null deletes).
        container: Patch = {"name": change.container, "resources": {"limits": {"memory": None}}}
        if change.request_to is not None:
            container["resources"]["requests"] = {"memory": _format_or_none(change.request_from)}
        return base.template_patch({"spec": {"containers": [container]}})
    return base.template_patch(
        _container_patch(
            change,
            limit=change.limit_from,
            request=change.request_from if change.request_to is not None else None,
        )
    )


def still_raised(snapshot: mutations.WorkloadSnapshot, change: MemoryChange) -> bool:
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


def dry_run_pod(snapshot: mutations.WorkloadSnapshot, change: MemoryChange) -> Patch:
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


_SIZED_BY_ANALYSIS = frozenset({analyses.Pattern.SPIKE, analyses.Pattern.STABLE})


def propose(
    ctx: base.Context, options: actions.RaiseMemory
) -> mutations.Mutation[MemoryChange] | decisions.Decision:
    snapshot = ctx.snapshot
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
    analysis = snapshot.analysis
    if (
        options.at_least_recommended
        and analysis is not None
        and analysis.pattern in _SIZED_BY_ANALYSIS
        and analysis.recommended_limit_bytes is not None
    ):
        # Runbook Step 3: a spike must fit under the new limit (its peak + 15 %), a stable workload gets the
        # VPA's right size when the step falls short of it.
        wanted = max(wanted, analysis.recommended_limit_bytes)
    new_limit = ctx.clamp(actions.Action.RAISE_MEMORY, from_amount=limit, to_amount=wanted)
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
    from_value = _format_or_none(limit)
    to_value = quantities.format_bytes(new_limit)
    entry = ctx.entry(actions.Action.RAISE_MEMORY, from_value=from_value, to_value=to_value, container=name)
    body = base.template_patch(_container_patch(change, limit=new_limit, request=new_request))
    return mutations.Mutation(
        plan=ctx.plan(
            actions.Action.RAISE_MEMORY,
            from_value=from_value,
            to_value=to_value,
            container=name,
            from_amount=limit,
            to_amount=new_limit,
        ),
        entry=entry,
        workload_patch=ctx.recorded(entry, body),
        change=change,
    )


def describe(plan: decisions.Plan) -> str:
    return f"memory limit of {plan.target.key} container {plan.container} raised {plan.from_value} → {plan.to_value}"


PART = base.PurePart(describe=describe, propose=propose)
