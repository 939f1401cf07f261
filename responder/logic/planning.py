"""Planning a mitigation from a snapshot of live state. Pure.

Stage: plan (second half). A purely computational module with no side-effects: given the top-level
workload and what surrounds it (`mutations.WorkloadSnapshot`), the playbook, the settings and the time, it
walks the playbook's actions in order and asks each mutating action's pure part
(`responder.logic.actions.<action>`) for a change, until one applies; the others are skipped with a reason,
and the non-mutating actions (diagnostics, escalation) are carried out in addition. Whether an action fits
the workload's kind, or would never roll out on a paused Deployment, is read from its traits
(`models.actions.TRAITS`). A workload an Argo CD or Flux object owns (`responder.logic.tracking`) gets a note
saying what to commit, or, with the playbook's `gitops: recommend`, no write at all. It never calls the API, never reads the clock and never decides policy:
guardrails (`responder.logic.guarding`) judge the resulting `decisions.Plan`.

Every body that writes a workload carries the ledger annotation and `metadata.resourceVersion`, so the
change and its record are one atomic write that fails with 409 when someone else wrote first.
"""

from __future__ import annotations

import dataclasses
import datetime

from responder.logic import actions as parts
from responder.logic import resolving, tracking
from responder.logic.actions import base
from responder.models import actions, alerts, decisions, gitops, mutations, settings

__all__ = ["describe", "propose"]


def describe(plan: decisions.Plan) -> str:
    """One line for humans: what the plan does."""
    return parts.part(plan.action).describe(plan)


def _unfit(snapshot: mutations.WorkloadSnapshot, action: actions.Action) -> decisions.Decision | None:
    traits = actions.traits_of(action)
    # A paused Deployment accepts template changes but does not roll them out: a raise or restart would be
    # recorded as done while no pod ever gets it.
    if traits.changes_template and (snapshot.workload.get("spec") or {}).get("paused"):
        return decisions.Decision.refuse(
            decisions.Reason.PAUSED_ROLLOUT, f"the Deployment is paused: {action.value} would not roll out"
        )
    if snapshot.target.kind not in traits.kinds:
        return base.not_applicable(snapshot.target.kind, action)
    return None


def _crash_loop(event: alerts.AlertEvent, pod: mutations.Body | None) -> decisions.Decision | None:
    """Restarts whose last cause is not an OOM kill: more replicas, more memory or a restart of a crash loop
    help nobody (and more replicas multiply it). Unknown causes (no termination recorded) are not judged."""
    if event.kind is not settings.AlertKind.RESTARTING_FREQUENTLY or pod is None:
        return None
    last = resolving.last_termination(pod, event.container)
    if last is None or last.reason == "OOMKilled":
        return None
    code = "" if last.exit_code is None else f" with exit code {last.exit_code}"
    return decisions.Decision.refuse(
        decisions.Reason.NOT_OOM_KILLED,
        f"container {last.container} restarts after exiting{code} ({last.reason}), not after an OOM kill: "
        f"no mitigation helps a crash loop; diagnostics and escalation only",
    )


def propose(
    *,
    snapshot: mutations.WorkloadSnapshot,
    event: alerts.AlertEvent,
    playbook: settings.Playbook,
    config: settings.Settings,
    now: datetime.datetime,
    identity: str,
    thread: str | None = None,
) -> mutations.Proposal:
    """The first action of `playbook` that applies to the target, its fallbacks' refusals, and the extras."""
    ctx = base.Context(snapshot, event, playbook.name, config, now, identity, thread)
    skipped: list[tuple[actions.Action, decisions.Decision]] = []
    extras: list[actions.ActionSpec] = []
    chosen: mutations.Mutation[mutations.Change] | None = None
    metadata = snapshot.workload.get("metadata") or {}
    owner = tracking.find_owner(labels=metadata.get("labels"), annotations=metadata.get("annotations"))
    for spec in playbook.actions:
        action = spec.action
        if not actions.traits_of(action).mutating:
            extras.append(spec)
            continue
        if chosen is not None:
            continue
        propose_one = parts.part(action).propose
        assert propose_one is not None, f"{action} is mutating: its pure part proposes"
        result = (
            _crash_loop(event, snapshot.pod) or _unfit(snapshot, action) or propose_one(ctx, spec.options)
        )
        if isinstance(result, mutations.Mutation):
            result = _under_gitops(result, owner=owner, snapshot=snapshot, mode=playbook.gitops)
        if isinstance(result, mutations.Mutation):
            chosen = result
        else:
            skipped.append((action, result))
    return mutations.Proposal(mutation=chosen, skipped=tuple(skipped), extras=tuple(extras))


def _under_gitops(
    mutation: mutations.Mutation[mutations.Change],
    *,
    owner: gitops.GitOpsOwner | None,
    snapshot: mutations.WorkloadSnapshot,
    mode: gitops.GitOpsMode,
) -> mutations.Mutation[mutations.Change] | decisions.Decision:
    """A GitOps controller reverts a write to what its source declares on the next sync (Argo CD self-heal,
    Flux drift correction), and the OOM kills return: say what to commit; with `recommend`, write nothing."""
    field = actions.traits_of(mutation.plan.action).source_field
    if owner is None or field is None:
        return mutation
    plan = mutation.plan
    note = tracking.recommendation(
        owner,
        field=field,
        value=plan.to_value,
        container=plan.container,
        hpa=plan.action is actions.Action.SCALE_OUT and snapshot.hpa is not None,
    )
    if mode is gitops.GitOpsMode.RECOMMEND:
        return decisions.Decision.refuse(decisions.Reason.GITOPS_MANAGED, note)
    return dataclasses.replace(mutation, plan=dataclasses.replace(plan, note=note))
