"""scheduled_restart, the pure part: how a restart schedule is described. Pure.

Stage: plan. Runbook RB-010 Solution 4 (periodic restarts while the leak is investigated): the schedule is
carried out beside the mitigation by `responder.engine.actions.scheduled_restart`, which keeps it in the
workload's follow-up record; its arithmetic (interval from the time to OOM, floor, ceiling, expiry, stops) is
`responder.logic.schedules`. Each restart it makes later is a `rollout_restart`, guarded at its own time.
"""

from __future__ import annotations

from responder.logic import following
from responder.logic.actions import base
from responder.models import actions, decisions

__all__ = ["PART", "describe", "describe_options"]


def describe(plan: decisions.Plan) -> str:
    return f"rolling restarts of {plan.target.key} scheduled"


def describe_options(options: actions.ScheduledRestart) -> str:
    """What the schedule would be, before any time to OOM is known (`oom-responder plan`)."""
    if options.time_to_oom_fraction is not None:
        every = (
            f"every {options.time_to_oom_fraction:g} × the time to OOM, between "
            f"{following.describe_duration(options.min_interval_seconds)} and "
            f"{following.describe_duration(options.max_interval_seconds)} "
            f"(else {following.describe_duration(options.interval_seconds)})"
        )
    else:
        every = f"every {following.describe_duration(options.interval_seconds)}"
    until = f"for {following.describe_duration(options.expire_after_seconds)}"
    if options.max_count is not None:
        until += f" or {options.max_count} restarts"
    return (
        f"rolling restart {every}, {until}; stops when the image changes, after "
        f"{options.stable_verdicts_to_stop} stable verdicts, on opt-out or `oom-responder schedules cancel`"
    )


PART = base.PurePart(describe=describe)
