"""scale_out, the pure part: more replicas, or a higher HPA floor when an HPA owns the replica count. Pure.

Stage: plan. Runbook RB-010 step 2, option B. Never calls the API: `responder.engine.actions.scale_out`
sends what this plans.
"""

from __future__ import annotations

import dataclasses
import math

from responder.logic.actions import base
from responder.models import actions, decisions, mutations

__all__ = ["PART", "ScaleChange", "describe", "propose", "scaled_replicas"]


@dataclasses.dataclass(frozen=True, slots=True)
class ScaleChange(mutations.Change):
    replicas: int
    """New spec.replicas, or new HPA minReplicas when `hpa_name` is set."""
    hpa_name: str | None = None
    hpa_patch: base.Patch | None = None

    @property
    def changes_workload(self) -> bool:
        return self.hpa_name is None

    @property
    def expected_replicas(self) -> int:
        # Verified against the new count: with an HPA, its controller raises spec.replicas only later.
        return self.replicas


def scaled_replicas(current: int, step: str) -> int:
    """`+N` adds N; `+P%` adds P % of current, rounded up, at least one."""
    parsed = actions.parse_step(step)
    if parsed is None:
        raise ValueError(f'not a scale step (want "+N" or "+P%"): {step!r}')
    amount, percent = parsed
    if percent:
        return current + max(1, math.ceil(current * amount / 100))
    return current + amount


def _hpa_floor(
    ctx: base.Context, options: actions.ScaleOut, current: int
) -> mutations.Mutation[ScaleChange] | decisions.Decision:
    # The HPA owns spec.replicas and would undo a direct scale at its next sync; raising its floor is the
    # way to add replicas it keeps.
    hpa = ctx.snapshot.hpa
    assert hpa is not None
    hpa_spec = hpa.get("spec") or {}
    hpa_min = int(hpa_spec.get("minReplicas") or 1)
    hpa_max = int(hpa_spec.get("maxReplicas") or hpa_min)
    wanted = scaled_replicas(max(current, hpa_min), options.step)
    new_min = min(ctx.clamp(actions.Action.SCALE_OUT, from_amount=hpa_min, to_amount=wanted), hpa_max)
    if new_min <= hpa_min:
        if hpa_min >= hpa_max:
            return decisions.Decision.refuse(
                decisions.Reason.HPA_AT_MAX, f"the HPA's minReplicas {hpa_min} is already its maxReplicas"
            )
        return decisions.Decision.refuse(
            decisions.Reason.AT_CEILING, f"the HPA's minReplicas {hpa_min} is at the ceiling"
        )
    entry = ctx.entry(actions.Action.SCALE_OUT, from_value=str(hpa_min), to_value=str(new_min))
    return mutations.Mutation(
        plan=ctx.plan(
            actions.Action.SCALE_OUT,
            from_value=str(hpa_min),
            to_value=str(new_min),
            from_amount=hpa_min,
            to_amount=new_min,
        ),
        entry=entry,
        # Only the ledger entry is written on the workload; it claims the action once across replicas.
        workload_patch=ctx.recorded(entry),
        change=ScaleChange(
            replicas=new_min,
            hpa_name=str((hpa.get("metadata") or {}).get("name")),
            # No resourceVersion precondition here: the HPA controller rewrites the object's status every
            # sync, so one would fail at random; the ledger entry on the workload (written first, under the
            # workload's resourceVersion) already makes the action happen once.
            hpa_patch={"spec": {"minReplicas": new_min}},
        ),
    )


def propose(
    ctx: base.Context, options: actions.ScaleOut
) -> mutations.Mutation[ScaleChange] | decisions.Decision:
    current = int((ctx.snapshot.workload.get("spec") or {}).get("replicas", 1))
    if ctx.snapshot.hpa is not None:
        return _hpa_floor(ctx, options, current)
    new = ctx.clamp(
        actions.Action.SCALE_OUT, from_amount=current, to_amount=scaled_replicas(current, options.step)
    )
    if new <= current:
        return decisions.Decision.refuse(
            decisions.Reason.AT_CEILING, f"{current} replicas, the most allowed is {new}"
        )
    entry = ctx.entry(actions.Action.SCALE_OUT, from_value=str(current), to_value=str(new))
    # spec.replicas is patched on the workload itself, not through the scale subresource, so the new count
    # and its ledger entry are one write under one resourceVersion precondition (a scale subresource
    # write cannot carry an annotation, which would make the record a second, separately failing write).
    return mutations.Mutation(
        plan=ctx.plan(
            actions.Action.SCALE_OUT,
            from_value=str(current),
            to_value=str(new),
            from_amount=current,
            to_amount=new,
        ),
        entry=entry,
        workload_patch=ctx.recorded(entry, {"spec": {"replicas": new}}),
        change=ScaleChange(replicas=new),
    )


def describe(plan: decisions.Plan) -> str:
    return f"{plan.target.key} scaled out {plan.from_value} → {plan.to_value}"


PART = base.PurePart(describe=describe, propose=propose)
