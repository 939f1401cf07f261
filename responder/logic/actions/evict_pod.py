"""evict_pod, the pure part: which pod to evict, and the ledger entry that records it. Pure.

Stage: plan. Runbook RB-010 solution 4 (evict the one hot pod). Never calls the API:
`responder.engine.actions.evict_pod` evicts and records.
"""

from __future__ import annotations

import dataclasses

from responder.logic.actions import base
from responder.models import actions, decisions, mutations

__all__ = ["PART", "EvictChange", "describe", "propose"]


@dataclasses.dataclass(frozen=True, slots=True)
class EvictChange(mutations.Change):
    pod: str

    @property
    def changes_workload(self) -> bool:
        return False


def propose(
    ctx: base.Context, options: actions.EvictPod
) -> mutations.Mutation[EvictChange] | decisions.Decision:
    snapshot = ctx.snapshot
    if snapshot.pod is None or not ctx.event.pod:
        return decisions.Decision.refuse(decisions.Reason.POD_GONE, f"pod {ctx.event.pod!r} no longer exists")
    if (snapshot.pod.get("metadata") or {}).get("deletionTimestamp"):
        return decisions.Decision.refuse(
            decisions.Reason.POD_GONE, f"pod {ctx.event.pod} is already terminating"
        )
    entry = ctx.entry(actions.Action.EVICT_POD, from_value=ctx.event.pod, to_value=None)
    return mutations.Mutation(
        plan=ctx.plan(actions.Action.EVICT_POD, from_value=ctx.event.pod, to_value=None),
        entry=entry,
        workload_patch=ctx.recorded(entry),
        change=EvictChange(pod=ctx.event.pod),
    )


def describe(plan: decisions.Plan) -> str:
    return f"pod {plan.pod} of {plan.target.key} evicted"


PART = base.PurePart(describe=describe, propose=propose)
