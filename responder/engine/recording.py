"""Writing a mitigation's follow-up record: ahead of the write, after it, and when its rollout is over.

Stage: follow. The engine calls these around a mitigation (`before_write`, `write_failed`,
`after_mitigation`, `holding`, `verified`) and for a restart schedule (`add_schedule`); each merges into the
workload's one record by compare-and-swap. Nothing here is slow before a write (no Prometheus, no LIST) and
nothing here fails a mitigation: a record that cannot be written is logged and the mitigation goes on. It
never takes a verdict, restarts a workload or reports an outcome (the other follow-up jobs do).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from responder.engine import announcing, reporting
from responder.kube import client, errors
from responder.kube import follow_ups as store_mod
from responder.logic import following, planning, schedules
from responder.logic.actions import raise_memory
from responder.models import actions, follow_ups, mutations, targets

__all__ = ["Recording"]

logger = logging.getLogger(__name__)

_ANALYSIS_WINDOW = datetime.timedelta(hours=6)
"""How far back the memory analysis looks when a schedule's interval is derived from the time to OOM."""


_RESTARTABLE = actions.traits_of(actions.Action.SCHEDULED_RESTART).kinds


class Recording(announcing.Announcing):
    """Records what must happen after a mitigation."""

    async def track(self, record: follow_ups.FollowUp, *, claim: bool = False) -> follow_ups.FollowUp | None:
        """Store a new record for a mitigation (merged into an existing one by `following.add_incident`).

        `claim`: the calling replica claims it, because it goes on to follow the rollout itself right away;
        if it dies, the claim lapses and another replica picks the verification up.
        """
        now = self.clock()

        def change(current: follow_ups.FollowUp | None) -> follow_ups.FollowUp:
            merged = following.add_incident(current, record)
            if claim:
                claimed = following.claim(
                    merged, holder=self.identity, now=now, seconds=self.config.claim_seconds
                )
                if claimed is not None:
                    return claimed
            return merged

        stored = await self.store.update(record.target, change)
        self.wake()
        return stored

    async def _record_for(
        self,
        run: reporting.Run,
        *,
        mutation: mutations.Mutation[mutations.Change],
        workload: Mapping[str, Any],
        pods: Sequence[Mapping[str, Any]],
        generation: int,
        summary: str,
        read_memory: bool,
    ) -> follow_ups.FollowUp | None:
        """The record of a mitigation: its horizons, its rollout to verify, its playbook's restart schedule
        (None when there is nothing to follow)."""
        plan = mutation.plan
        target = plan.target
        now = self.clock()
        playbook = run.item.playbook
        specs = playbook.actions if playbook is not None else []
        verification = None
        if actions.traits_of(plan.action).follows_rollout:
            change = mutation.change
            memory = change if isinstance(change, raise_memory.MemoryChange) else None
            options = next((spec.options for spec in specs if spec.action is plan.action), None)
            verification = follow_ups.Verification(
                action=plan.action,
                generation=generation,
                since=mutation.entry.at,
                deadline=now + datetime.timedelta(seconds=self.settings.verification.timeout_seconds),
                summary=summary,
                from_value=plan.from_value,
                to_value=plan.to_value,
                container=memory.container if memory else None,
                limit_from=memory.limit_from if memory else None,
                limit_to=memory.limit_to if memory else None,
                request_from=memory.request_from if memory else None,
                request_to=memory.request_to if memory else None,
                revert_on_failure=bool(getattr(options, "revert_on_failure", False)),
            )
        scheduled = next((spec.scheduled_restart for spec in specs if spec.scheduled_restart), None)
        if verification is None and not self.config.enabled and scheduled is None:
            return None
        record = following.begin(
            target=target,
            uid=str((workload.get("metadata") or {}).get("uid") or "") or None,
            incident=plan.occurrence_id,
            playbook=plan.playbook,
            action=plan.action,
            acted_at=mutation.entry.at,
            config=self.config,
            pods=pods,
            thread=run.thread,
            container=plan.container or run.event.container,
            verification=verification,
        )
        if scheduled is not None and target.kind in _RESTARTABLE:
            # In the same write as the verdicts: a replica killed right after the mitigation must not leave
            # it unscheduled (the alert's repeats then find the mitigation done and do nothing).
            schedule, _ = await self._new_schedule(
                scheduled,
                target=target,
                container=record.container,
                workload=workload,
                pods=pods,
                incident=plan.occurrence_id,
                playbook=plan.playbook,
                now=now,
                read_memory=read_memory,
            )
            record = record.model_copy(update={"schedule": schedule})
        return record

    async def before_write(
        self,
        run: reporting.Run,
        *,
        snapshot: mutations.WorkloadSnapshot,
        mutation: mutations.Mutation[mutations.Change],
    ) -> None:
        """Right before a mitigation's write: its record, unconfirmed and claimed by this replica. If this
        replica dies after the write, another finds it once the claim lapses and confirms it from the
        workload's ledger (or drops it: the write did not happen). Nothing slow here (no Prometheus, no
        LIST), and never fails the mitigation."""
        target = mutation.plan.target
        try:
            record = await self._record_for(
                run,
                mutation=mutation,
                workload=snapshot.workload,
                pods=[snapshot.pod] if snapshot.pod is not None else [],
                generation=0,
                summary=planning.describe(mutation.plan),
                read_memory=False,
            )
            if record is None:
                return
            record = record.model_copy(update={"confirmed": False})
            now = self.clock()
            before: list[follow_ups.FollowUp | None] = []

            claimed_ahead: list[bool] = []

            def change(current: follow_ups.FollowUp | None) -> follow_ups.FollowUp:
                before[:] = [current]
                merged = following.add_incident(current, record).model_copy(update={"confirmed": False})
                claimed = following.claim(
                    merged, holder=self.identity, now=now, seconds=self.config.claim_seconds
                )
                claimed_ahead[:] = [claimed is not None]
                return claimed or merged

            await self.store.update(target, change)
            self._previous[(target.key, record.incident)] = before[0] if before else None
            if claimed_ahead == [True]:
                self._claimed_ahead.add((target.key, record.incident))
        except errors.KubeError as e:
            logger.warning(
                "follow-up of %s not written ahead: %s (it is written after the mitigation instead)",
                target.key,
                e.message,
            )

    async def write_failed(
        self, mutation: mutations.Mutation[mutations.Change], *, maybe_written: bool
    ) -> None:
        """The write did not happen (put the record back as it was), or may have happened (a 5xx: leave it
        unconfirmed and let go of it, so that the ledger decides)."""
        target = mutation.plan.target
        incident = mutation.plan.occurrence_id
        previous = self._previous.pop((target.key, incident), None)
        self._claimed_ahead.discard((target.key, incident))

        def change(current: follow_ups.FollowUp) -> follow_ups.FollowUp | store_mod._Delete | None:
            if current.incident != incident or current.confirmed:
                return None
            if maybe_written:
                return following.release(current, holder=self.identity)
            return previous if previous is not None else store_mod.DELETE

        try:
            await self._commit(target, change)
        except errors.KubeError as e:
            logger.warning("follow-up of %s: unconfirmed record left to lapse: %s", target.key, e.message)

    async def after_mitigation(
        self,
        run: reporting.Run,
        *,
        mutation: mutations.Mutation[mutations.Change],
        written: client.Body,
        options: object,
        summary: str,
        follows_rollout: bool,
    ) -> None:
        """The mitigation is written: confirm its record with what the write produced (the generation whose
        rollout is followed by this replica now, under its claim), the pods' restart counts and, when
        Prometheus is configured, a schedule interval from its time to OOM. Never fails the mitigation."""
        plan = mutation.plan
        target = plan.target
        ahead = (target.key, plan.occurrence_id) in self._claimed_ahead
        self._claimed_ahead.discard((target.key, plan.occurrence_id))
        self._previous.pop((target.key, plan.occurrence_id), None)
        playbook = run.item.playbook
        scheduled = playbook is not None and any(spec.scheduled_restart for spec in playbook.actions)
        if ahead and follows_rollout and not scheduled:
            # The record written ahead holds all the rollout's verification needs (this replica follows the
            # generation it wrote, under the claim taken then): it is confirmed in the write that clears the
            # verification, one write instead of two. If this replica dies first, the claim lapses and
            # another confirms it from the workload's ledger, as for a death right after the write.
            since = mutation.entry.at
            self._held.add((target.key, since))
            return
        try:
            # No LIST of the pods here (a mitigation costs no extra request for it): the alerted pod's restart
            # counts were kept ahead of the write, and a pod older than the mitigation seen first at a
            # verdict is counted from that look on (`responder.logic.verdicts.judge`).
            record = await self._record_for(
                run,
                mutation=mutation,
                workload=written,
                pods=[],
                generation=int((written.get("metadata") or {}).get("generation") or 0),
                summary=summary,
                read_memory=True,
            )
            if record is None:
                return
            now = self.clock()
            verifying = record.verification is not None and follows_rollout

            def change(current: follow_ups.FollowUp | None) -> follow_ups.FollowUp:
                if current is not None and current.incident == record.incident and not current.confirmed:
                    merged = record.model_copy(update={"claim": current.claim, "restarts": current.restarts})
                else:
                    merged = following.add_incident(current, record)
                if verifying:
                    claimed = following.claim(
                        merged, holder=self.identity, now=now, seconds=self.config.claim_seconds
                    )
                    return claimed or merged
                return merged

            await self.store.update(target, change)
            self.wake()
            if verifying and record.verification is not None:
                self._held.add((target.key, record.verification.since))
        except errors.KubeError as e:
            logger.warning(
                "follow-up of %s not recorded: %s (no verdicts will be taken for it)",
                target.key,
                e.message,
                extra={"target": target.key, "incident": plan.occurrence_id},
            )

    @contextlib.asynccontextmanager
    async def holding(self, target: targets.Target) -> AsyncIterator[None]:
        """Keep this replica's claim on the record alive while it follows a rollout (minutes, maybe)."""
        renewing = asyncio.create_task(self._renew(target), name=f"renew:{target.key}")
        try:
            yield
        finally:
            renewing.cancel()
            await asyncio.gather(renewing, return_exceptions=True)

    async def verified(self, target: targets.Target, *, since: datetime.datetime) -> bool:
        """The pending verification written at `since` is over: clear it (compare-and-swap) and release the
        claim. True when this call cleared it, i.e. this replica is the one to report it; False when another
        replica took it over and reported it already. A record that cannot be written reports anyway."""

        def change(current: follow_ups.FollowUp) -> follow_ups.FollowUp | None:
            pending = current.verification
            if pending is None or pending.since != since:
                return None
            # Confirmed here too: a record written ahead and followed by its writer was not confirmed apart.
            done = current.model_copy(update={"verification": None, "confirmed": True})
            return following.release(done, holder=self.identity)

        if (target.key, since) not in self._held:
            return True  # never recorded (the record could not be written): only this replica knows of it
        self._held.discard((target.key, since))
        try:
            applied, _ = await self._commit(target, change)
        except errors.KubeError as e:
            logger.warning("follow-up of %s: verification not cleared: %s", target.key, e.message)
            return True
        if applied:
            self.wake()
        return applied

    async def add_schedule(
        self,
        *,
        snapshot: mutations.WorkloadSnapshot,
        incident: str,
        playbook: str,
        thread: str | None,
        container: str | None,
        options: actions.ScheduledRestart,
    ) -> tuple[follow_ups.Schedule | None, str]:
        """Begin a restart schedule on the workload's record unless one runs (`scheduled_restart`)."""
        now = self.clock()
        target = snapshot.target
        pods = [snapshot.pod] if snapshot.pod is not None else []
        schedule, how = await self._new_schedule(
            options,
            target=target,
            container=container,
            workload=snapshot.workload,
            pods=pods,
            incident=incident,
            playbook=playbook,
            now=now,
        )
        running: list[follow_ups.Schedule] = []

        def change(current: follow_ups.FollowUp | None) -> follow_ups.FollowUp | None:
            running[:] = []
            if current is not None and current.schedule is not None and current.schedule.stopped is None:
                running.append(current.schedule)
                return None
            if current is None or current.ended is not None:
                uid = str((snapshot.workload.get("metadata") or {}).get("uid") or "") or None
                current = following.begin(
                    target=target,
                    uid=uid,
                    incident=incident,
                    playbook=playbook,
                    action=actions.Action.SCHEDULED_RESTART,
                    acted_at=now,
                    config=self.config,
                    thread=thread,
                    container=container,
                )
            return current.model_copy(update={"schedule": schedule})

        await self.store.update(target, change)
        self.wake()
        if running and running[0].incident == incident:
            # Begun with the mitigation's own record (`after_mitigation`), in the same write as its verdicts.
            return running[0], how
        if running:
            already = running[0]
            return None, (
                f"a restart schedule already runs (every "
                f"{following.describe_duration(already.interval_seconds)}, {already.count} done)"
            )
        return schedule, how

    async def _new_schedule(
        self,
        options: actions.ScheduledRestart,
        *,
        target: targets.Target,
        container: str | None,
        workload: Mapping[str, Any],
        pods: Sequence[Mapping[str, Any]],
        incident: str,
        playbook: str,
        now: datetime.datetime,
        read_memory: bool = True,
    ) -> tuple[follow_ups.Schedule, str]:
        """A schedule beginning now; a derived interval uses the Prometheus analysis' time to OOM (unless
        `read_memory` is off: not before a write), else how long the OOM-killed containers had run."""
        time_to_oom = None
        if options.time_to_oom_fraction is not None:
            reading = None
            if read_memory:
                reading = await self._read_memory_between(
                    target, container, since=now - _ANALYSIS_WINDOW, until=now
                )
            time_to_oom = reading.time_to_oom_seconds if reading is not None else None
            if time_to_oom is None:
                time_to_oom = schedules.time_to_oom_from_pods(pods, container=container)
        return schedules.new_schedule(
            options=options,
            playbook=playbook,
            incident=incident,
            workload=workload,
            now=now,
            time_to_oom_seconds=time_to_oom,
        )
