"""rollout_restart, the pure part: the `kubectl.kubernetes.io/restartedAt` stamp, as `kubectl rollout restart`.

Stage: plan. The stamp and its ledger entry are one PATCH under the workload's resourceVersion. Never calls
the API: `responder.engine.actions.rollout_restart` sends it.
"""

from __future__ import annotations

import dataclasses
import datetime

from responder.logic.actions import base
from responder.models import actions, decisions, mutations

__all__ = ["PART", "RESTARTED_AT_ANNOTATION", "RestartChange", "describe", "propose"]

RESTARTED_AT_ANNOTATION = actions.RESTARTED_AT_ANNOTATION


@dataclasses.dataclass(frozen=True, slots=True)
class RestartChange(mutations.Change):
    stamp: str


def propose(
    ctx: base.Context, options: actions.RolloutRestart
) -> mutations.Mutation[RestartChange] | decisions.Decision:
    workload = ctx.snapshot.workload
    stamp = ctx.now.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    previous = (
        ((workload.get("spec") or {}).get("template", {}).get("metadata") or {})
        .get("annotations", {})
        .get(RESTARTED_AT_ANNOTATION)
    )
    entry = ctx.entry(actions.Action.ROLLOUT_RESTART, from_value=previous, to_value=stamp)
    body = base.template_patch({"metadata": {"annotations": {RESTARTED_AT_ANNOTATION: stamp}}})
    return mutations.Mutation(
        plan=ctx.plan(actions.Action.ROLLOUT_RESTART, from_value=previous, to_value=stamp),
        entry=entry,
        workload_patch=ctx.recorded(entry, body),
        change=RestartChange(stamp=stamp),
    )


def describe(plan: decisions.Plan) -> str:
    return f"{plan.target.key} restarted"


PART = base.PurePart(describe=describe, propose=propose)
