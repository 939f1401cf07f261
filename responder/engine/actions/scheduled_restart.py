"""scheduled_restart, the I/O part: keep a restart schedule in the workload's follow-up record.

Stage: act (beside the mitigation). Runbook RB-010 Solution 4. Writes no workload now: the schedule goes into
the follow-up record (`responder.engine.following`), whose poller makes each restart when it falls due, through
the guardrails. In dry-run (and in `plan`) nothing is kept; the schedule is only described.
"""

from __future__ import annotations

from responder.engine.actions import base
from responder.kube import client, errors
from responder.logic.actions import scheduled_restart as pure
from responder.models import actions, decisions, notices

__all__ = ["PART", "carry_out"]


async def carry_out(
    kube: client.Kube, *, given: base.AdditionalInput, options: actions.ScheduledRestart
) -> base.AdditionalResult:
    where = given.target.key
    if given.dry_run or given.follow_ups is None or given.snapshot is None:
        how = pure.describe_options(options)
        return base.AdditionalResult(
            decisions.Outcome.WOULD_DO, f"would schedule rolling restarts of {where}", how
        )
    try:
        schedule, how = await given.follow_ups.add_schedule(
            snapshot=given.snapshot,
            incident=given.incident,
            playbook=given.playbook,
            thread=given.thread,
            container=given.container,
            options=options,
        )
    except errors.KubeError as e:
        return base.AdditionalResult(
            decisions.Outcome.FAILED,
            f"rolling restarts of {where} could not be scheduled",
            f"the follow-up record could not be written: {e.message}",
            kind=notices.NoticeKind.REFUSAL,
            event=True,
        )
    if schedule is None:
        return base.AdditionalResult(
            decisions.Outcome.SKIPPED, f"restarts of {where} not scheduled again", how
        )
    return base.AdditionalResult(
        decisions.Outcome.DONE,
        f"rolling restarts of {where} scheduled",
        f"{how}; the first at {schedule.next_at.strftime('%Y-%m-%d %H:%M:%S UTC')}",
        event=True,
    )


PART = base.Additional(carry_out=carry_out)
