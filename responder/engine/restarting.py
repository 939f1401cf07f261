"""Scheduled restarts: one rollout restart per interval, until the schedule stops (runbook Solution 4).

Stage: follow. A due restart passes the guardrails (`responder.logic.guarding`) and the budget, is written
as a restart stamp with its ledger occurrence `<incident>/restart-<n>` (so a replica that takes over never
restarts twice for one due time), then committed into the record and reported. A schedule stops on an image
change, opt-out, a namespace no longer allowed, expiry or its maximum count. This module never takes a
verdict and never follows a mitigation's rollout.
"""

from __future__ import annotations

import datetime
import logging

from responder.engine import announcing
from responder.kube import client, errors, fetching
from responder.logic import following, schedules
from responder.models import cluster_state, decisions, follow_ups, ledgers, settings, targets

__all__ = ["Restarting"]

logger = logging.getLogger(__name__)


class Restarting(announcing.Announcing):
    """Makes the restarts of a schedule when they fall due, or says why not."""

    async def _schedule_step(
        self, record: follow_ups.FollowUp, schedule: follow_ups.Schedule, workload: client.Body
    ) -> None:
        now = self.clock()
        stop = schedules.schedule_stop(schedule, now=now, workload=workload)
        if stop is not None:
            reason, detail = stop
            await self._stop(record, schedule, reason, detail, workload=workload)
            return
        if now < schedule.next_at:
            return
        target = record.target
        number = schedule.count + 1
        occurrence = schedules.restart_occurrence(schedule, number)
        entries = ledgers.load(
            ((workload.get("metadata") or {}).get("annotations") or {}).get(ledgers.ANNOTATION)
        )
        written = next((entry for entry in entries if entry.occurrence == occurrence), None)
        if written is not None:
            # A replica wrote this restart and died before recording it here: record it, do not restart again.
            await self._restarted(
                record,
                schedule,
                number,
                f"written by {written.by} at {written.at.isoformat()}, recorded late",
            )
            return
        blocked = self._restart_refusal(target, workload)
        if blocked is None:
            plan = decisions.Plan(
                playbook=schedule.playbook,
                action=settings.Action.ROLLOUT_RESTART,
                target=target,
                occurrence_id=occurrence,
            )
            snapshot = cluster_state.TargetSnapshot.from_annotations(
                namespace=target.namespace,
                annotations=(workload.get("metadata") or {}).get("annotations"),
                own_namespace=self.own_namespace,
            )
            decision = self.guard(
                plan=plan,
                snapshot=snapshot,
                cluster=await self.state_store.read(),
                settings=self.settings,
                now=now,
            )
            if not decision.allowed:
                if decision.guardrail is decisions.Guardrail.OPT_OUT:
                    await self._stop(record, schedule, follow_ups.StopReason.OPTED_OUT, decision.detail)
                    return
                if decision.guardrail is decisions.Guardrail.NAMESPACE:
                    await self._stop(record, schedule, follow_ups.StopReason.NOT_ALLOWED, decision.detail)
                    return
                if decision.guardrail is not None:
                    self.metrics.guardrail_blocks.labels(decision.guardrail.value).inc()
                blocked = (decision, f"blocked by guardrail {decision.guardrail}: {decision.detail}")
        if blocked is not None:
            await self._blocked(record, schedule, *blocked)
            return
        if self.dry_run:
            await self._restarted(record, schedule, number, "dry run: not written", dry_run=True)
            return
        reserved = await self.state_store.reserve(now=now)
        if not reserved.allowed:
            if reserved.guardrail is not None:
                self.metrics.guardrail_blocks.labels(reserved.guardrail.value).inc()
            await self._blocked(
                record, schedule, reserved, f"blocked by guardrail {reserved.guardrail}: {reserved.detail}"
            )
            return
        entry = schedules.restart_entry(
            schedule=schedule,
            workload=workload,
            now=now,
            identity=self.identity,
            thread=self._thread(record, entries),
        )
        try:
            await self.kube.patch(
                fetching.workload_path(target), schedules.restart_patch(workload=workload, entry=entry)
            )
        except errors.KubeConflict:
            # The workload changed since it was read: give the token back; the next poll re-reads and retries.
            await self.state_store.return_budget(now=now)
            return
        except errors.KubeError as e:
            if not isinstance(e, errors.KubeUnavailable):
                await self.state_store.return_budget(now=now)
            self.metrics.scheduled_restarts.labels("failed").inc()
            await self._blocked(
                record,
                schedule,
                decisions.Decision.refuse(decisions.Reason.API_ERROR, e.message),
                f"failed: {e.message}",
            )
            return
        await self._restarted(record, schedule, number, f"restartedAt {entry.to_value}")

    def _restart_refusal(
        self, target: targets.Target, workload: client.Body
    ) -> tuple[decisions.Decision, str] | None:
        if schedules.is_scaled_to_zero(workload):
            return (
                decisions.Decision.refuse(decisions.Reason.NOT_SCALABLE, "scaled to 0"),
                "skipped: the workload is scaled to 0, there is nothing to restart",
            )
        if schedules.is_paused(workload):
            return (
                decisions.Decision.refuse(decisions.Reason.PAUSED_ROLLOUT, "rollout paused"),
                "skipped: the Deployment's rollout is paused, a restart would not roll out",
            )
        return None

    async def _restarted(
        self,
        record: follow_ups.FollowUp,
        schedule: follow_ups.Schedule,
        number: int,
        how: str,
        *,
        dry_run: bool = False,
    ) -> None:
        now = self.clock()

        def change(current: follow_ups.FollowUp) -> follow_ups.FollowUp | None:
            s = current.schedule
            if s is None or s.incident != schedule.incident or s.stopped is not None or s.count != number - 1:
                return None
            updated = current.model_copy(update={"schedule": schedules.after_restart(s, now=now)})
            if s.max_count is not None and s.count + 1 >= s.max_count:
                # The last one: the schedule ends with it, rather than one interval later.
                updated = schedules.stop_schedule(updated, follow_ups.StopReason.MAX_COUNT, now=now)
            return updated

        applied, after = await self._commit(record.target, change)
        if not applied or after is None or after.schedule is None:
            return
        last = after.schedule.stopped is follow_ups.StopReason.MAX_COUNT
        self.metrics.scheduled_restarts.labels("would_do" if dry_run else "done").inc()
        self.metrics.actions.labels(
            schedule.playbook,
            settings.Action.ROLLOUT_RESTART.value,
            (decisions.Outcome.WOULD_DO if dry_run else decisions.Outcome.DONE).value,
        ).inc()
        of = f" of {schedule.max_count}" if schedule.max_count else ""
        late = (now - schedule.next_at).total_seconds()
        when = following.describe_late(late, late_after_seconds=self.config.late_after_seconds)
        self._notify(
            record,
            summary=f"Scheduled restart {number}{of} of {record.target.key}",
            detail=(
                f"{how}. The last one of the schedule. {when}"
                if last
                else f"{how}. Next one at {after.schedule.next_at.strftime('%Y-%m-%d %H:%M:%S UTC')} "
                f"(every {following.describe_duration(schedule.interval_seconds)}, until "
                f"{schedule.expires_at.strftime('%Y-%m-%d %H:%M UTC')}). {when}"
            ).strip(),
            outcome=decisions.Outcome.WOULD_DO if dry_run else decisions.Outcome.DONE,
            action=settings.Action.ROLLOUT_RESTART,
            dry_run=dry_run,
        )
        await self._event(
            record,
            verb=settings.Action.ROLLOUT_RESTART.value,
            reason="would_do" if dry_run else "done",
            note=f"scheduled restart {number}{of}: {how}",
            warning=False,
        )
        if last:
            await self._announce_stop(after, after.schedule, f"all {schedule.max_count} restarts done")

    async def _blocked(
        self,
        record: follow_ups.FollowUp,
        schedule: follow_ups.Schedule,
        decision: decisions.Decision,
        text: str,
    ) -> None:
        """A due restart that cannot run now: said once per distinct reason, retried on the next poll (a
        scaled-to-0 workload skips to the next interval)."""
        now = self.clock()
        skip = decision.reason is decisions.Reason.NOT_SCALABLE

        def change(current: follow_ups.FollowUp) -> follow_ups.FollowUp | None:
            s = current.schedule
            if s is None or s.incident != schedule.incident or s.stopped is not None:
                return None
            update: dict[str, object] = {"blocked": text}
            if skip:
                update["next_at"] = now + datetime.timedelta(seconds=s.interval_seconds)
            if s.blocked == text and not skip:
                return None
            return current.model_copy(update={"schedule": s.model_copy(update=update)})

        applied, _ = await self._commit(record.target, change)
        if not applied or schedule.blocked == text:
            return
        self.metrics.scheduled_restarts.labels("skipped" if skip else "blocked").inc()
        self._notify(
            record,
            summary=f"Scheduled restart {schedule.count + 1} of {record.target.key} {text.split(':', maxsplit=1)[0]}",
            detail=text,
            outcome=decisions.Outcome.SKIPPED if skip else decisions.Outcome.BLOCKED,
            action=settings.Action.ROLLOUT_RESTART,
            reason=decision.reason,
            guardrail=decision.guardrail,
        )
        await self._event(
            record,
            verb=settings.Action.ROLLOUT_RESTART.value,
            reason=f"{'skipped' if skip else 'blocked'}:{(decision.guardrail or decision.reason).value}",
            note=text,
            warning=not skip,
        )

    async def _stop(
        self,
        record: follow_ups.FollowUp,
        schedule: follow_ups.Schedule,
        reason: follow_ups.StopReason,
        detail: str,
        *,
        workload: client.Body | None = None,
    ) -> None:
        now = self.clock()
        fresh = reason is follow_ups.StopReason.IMAGE_CHANGED and workload is not None

        def change(current: follow_ups.FollowUp) -> follow_ups.FollowUp | None:
            s = current.schedule
            if s is None or s.incident != schedule.incident or s.stopped is not None:
                return None
            stopped = schedules.stop_schedule(current, reason, now=now)
            if fresh:
                # The fix shipped (Solution 1): judge the new image from now on, over a fresh series of horizons.
                stopped = stopped.model_copy(
                    update={
                        "acted_at": now,
                        "horizons": following.horizons(
                            acted_at=now, horizons_seconds=self.config.horizons_seconds
                        ),
                        "restarts": {},
                    }
                )
            return stopped

        applied, after = await self._commit(record.target, change)
        if applied and after is not None and after.schedule is not None:
            extra = ""
            if fresh:
                labels = ", ".join(follow_ups.horizon_label(s) for s in self.config.horizons_seconds)
                extra = f" A fresh series of verdicts starts now ({labels}) for the new image."
            await self._announce_stop(after, after.schedule, detail + "." + extra)
