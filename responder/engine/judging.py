"""Taking a follow-up's verdict at a horizon, and ending a follow-up (closed, not closed, workload gone).

Stage: follow (runbook RB-010 Step 6). A due verdict reads the workload's pods and, when configured,
Prometheus; `responder.logic.verdicts.judge` decides; the verdict goes into the ledger entry and the
record (compare-and-swap), then into a notice, an Event and the metric, said once. A failed verdict expires
the mitigation's Alertmanager silence (best effort). This module never restarts a workload and never
follows a rollout.
"""

from __future__ import annotations

import logging

from responder.engine import announcing
from responder.kube import client, errors, patching
from responder.kube import follow_ups as store_mod
from responder.logic import following, schedules, verdicts
from responder.models import decisions, follow_ups, ledgers, notices

__all__ = ["Judging"]

logger = logging.getLogger(__name__)


class Judging(announcing.Announcing):
    """Takes due verdicts and ends follow-ups."""

    async def _end_gone(self, record: follow_ups.FollowUp, *, replaced: bool) -> None:
        def change(current: follow_ups.FollowUp) -> store_mod._Delete | None:
            return store_mod.DELETE if current.uid == record.uid else None

        applied, _ = await self._commit(record.target, change)
        if not applied:
            return
        left = []
        pending = [h for h in record.horizons if h.verdict is None]
        if pending:
            left.append(f"{len(pending)} pending verdict(s)")
        if record.schedule is not None and record.schedule.stopped is None:
            left.append(f"the restart schedule ({record.schedule.count} restart(s) done)")
        if record.verification is not None:
            left.append("the rollout verification")
        what = "was deleted and created again (another uid)" if replaced else "was deleted"
        self._notify(
            record,
            summary=f"Follow-up of {record.target.key} ended: the workload {what}",
            detail=f"Ended with it: {', '.join(left) or 'nothing pending'}.",
            outcome=decisions.Outcome.SKIPPED,
            reason=decisions.Reason.TARGET_NOT_FOUND,
        )
        if record.schedule is not None and record.schedule.stopped is None:
            self.metrics.scheduled_restarts.labels("skipped").inc()

    async def _finish(self, record: follow_ups.FollowUp) -> None:
        def change(current: follow_ups.FollowUp) -> store_mod._Delete | None:
            same = current.incident == record.incident
            return store_mod.DELETE if same and (following.is_finished(current) or current.ended) else None

        applied, _ = await self._commit(record.target, change)
        if not applied or not record.horizons:
            return
        closed, text = verdicts.closing_summary(record)
        if closed:
            self._notify(
                record,
                summary=f"Incident closed for {record.target.key}: {text}",
                detail="Every verdict was stable (runbook Step 6 success criteria met).",
                outcome=decisions.Outcome.DONE,
            )
        else:
            self._notify(
                record,
                summary=f"Follow-up of {record.target.key} over, incident {text}",
                detail="The runbook's success criteria were not met: a human must look at this workload.",
                outcome=decisions.Outcome.ESCALATED,
                kind=notices.NoticeKind.ESCALATION,
            )
        await self._closing_event(record)

    async def _verdict_step(
        self, record: follow_ups.FollowUp, horizon: follow_ups.Horizon, workload: client.Body
    ) -> None:
        now = self.clock()
        target = record.target
        readable: client.Body | None = workload
        try:
            pods = await self._pods(target, workload)
        except errors.KubeError as e:
            logger.warning("follow-up of %s: pods unreadable: %s", target.key, e.message)
            pods, readable = [], None
        memory = await self._read_memory_between(target, record.container, since=record.acted_at, until=now)
        verdict, counts = verdicts.judge(
            record=record,
            horizon=horizon,
            workload=readable,
            pods=pods,
            memory=memory,
            config=self.config,
            now=now,
        )
        label = follow_ups.horizon_label(horizon.seconds)
        entries = ledgers.load(
            ((workload.get("metadata") or {}).get("annotations") or {}).get(ledgers.ANNOTATION)
        )
        noted = ""
        if any(entry.occurrence == record.incident for entry in entries):
            if not self.dry_run:
                await patching.update_ledger(
                    self.kube,
                    target,
                    lambda current: verdicts.with_verdict(
                        current, incident=record.incident, label=label, kind=verdict.kind
                    ),
                    attempts=patching.LEDGER_WRITE_ATTEMPTS,
                )
        else:
            noted = (
                " Not noted in the ledger: the entry of this mitigation is not there any more "
                "(aged out of the bounded ledger, or edited by hand)."
            )

        final: list[follow_ups.FollowUp] = []

        def change(current: follow_ups.FollowUp) -> follow_ups.FollowUp | store_mod._Delete | None:
            final[:] = []
            if current.incident != record.incident:
                return None
            horizons = list(current.horizons)
            for index, existing in enumerate(horizons):
                if existing.due_at == horizon.due_at and existing.verdict is None:
                    horizons[index] = existing.model_copy(update={"verdict": verdict})
                    updated = current.model_copy(update={"horizons": tuple(horizons), "restarts": counts})
                    updated, _ = schedules.after_verdict(updated, verdict.kind, now=now)
                    if following.is_finished(updated):
                        # The last verdict, nothing else pending: the record ends in the same write, and
                        # this verdict's notice closes the incident (or says why it is not closed).
                        final.append(updated)
                        return store_mod.DELETE
                    return updated
            return None

        applied, after = await self._commit(target, change)
        if not applied:
            return
        after = final[0] if final else after
        self.metrics.verdicts.labels(label, verdict.kind.value).inc()
        if verdict.late_seconds > self.config.late_after_seconds:
            self.metrics.follow_ups_late.inc()
        summary = f"{label} verdict for {target.key}: {verdict.kind.value.replace('_', ' ')}"
        detail = verdict.detail + noted
        outcome = follow_ups.decision_outcome(verdict.kind)
        kind = (
            notices.NoticeKind.ESCALATION
            if verdict.kind is follow_ups.VerdictKind.FAILED
            else notices.NoticeKind.FOLLOW_UP
        )
        if verdict.kind is follow_ups.VerdictKind.FAILED:
            detail += await self._expire_silence(
                record, entries, why=f"the {label} verdict found {target.key} OOM-killed again"
            )
        closed: bool | None = None
        if final:
            closed, text = verdicts.closing_summary(final[0])
            if closed:
                summary += f". Incident closed: {text}"
                detail += " Every verdict was stable: the runbook's Step 6 success criteria are met."
            else:
                summary += f". Follow-up over, incident {text}"
                detail += " The runbook's success criteria were not met: a human must look at this workload."
                outcome, kind = decisions.Outcome.ESCALATED, notices.NoticeKind.ESCALATION
        self._notify(record, summary=summary, detail=detail, outcome=outcome, kind=kind)
        await self._event(
            record,
            verb="verdict",
            reason=f"verdict:{verdict.kind.value}",
            note=f"{label} verdict ({verdict.evidence.value}): {verdict.detail}{noted}",
            warning=verdict.kind in (follow_ups.VerdictKind.FAILED, follow_ups.VerdictKind.STILL_LEAKING),
        )
        if final:
            await self._closing_event(final[0])
        if (
            after is not None
            and record.schedule is not None
            and record.schedule.stopped is None
            and after.schedule is not None
            and after.schedule.stopped is follow_ups.StopReason.STABLE
        ):
            await self._announce_stop(
                after, after.schedule, f"{after.schedule.stable_seen} stable verdicts in a row"
            )
