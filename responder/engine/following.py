"""Staying with an incident after the mitigation: verdicts at horizons, scheduled restarts, rollouts in flight.

Stage: follow (runbook RB-010 Step 6 and Solution 4). What must happen later for a workload is kept in its
follow-up record (`responder.kube.follow_ups`: one Lease per workload in the service's namespace), never
only in this process. Every replica polls the records (one labelled LIST every `follow_up.poll_seconds`); a
record that is due is claimed by compare-and-swap (exactly one replica wins, and a claim lapses after
`follow_up.claim_seconds`, so a replica killed with `kill -9` holds nothing for longer), worked on, and
released. The same mechanism picks up a rollout verification whose replica died.

Exactly once: each step (a verdict, a restart, a schedule's end, a verification's result, the record's end)
is committed into the record by compare-and-swap before anything is reported, and only by the replica whose
commit changed the record; a restart's ledger occurrence (`<incident>/restart-<n>`) on the workload proves
it was written, so a replica that takes over never restarts twice for one due time. A step whose replica
died after its write and before its commit is finished by the next replica, late, and says so.

All decisions are the pure functions of `responder.logic.following` and `responder.logic.guarding`; this
module reads, calls them, writes and reports (notice, Kubernetes Event, metric, log line). It never
swallows `CancelledError` and never catches `ApiException` (only `responder.kube.errors`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, Protocol

from responder import metrics as metrics_mod
from responder.engine import quieting, reporting, verifying
from responder.kube import client, errors, events, fetching, patching, threads
from responder.kube import follow_ups as store_mod
from responder.logic import following, guarding, planning
from responder.logic.actions import raise_memory
from responder.models import (
    actions,
    cluster_state,
    decisions,
    follow_ups,
    ledgers,
    mutations,
    notices,
    settings,
    targets,
)
from responder.prometheus import reading

__all__ = ["Following", "MemoryReader", "Notifier", "PrometheusMemory", "StateStore"]

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime.datetime]


class Notifier(Protocol):
    def notify(self, notice: notices.Notice) -> None: ...


class StateStore(Protocol):
    """The cluster-wide guardrail state (`responder.kube.state.StateStore`)."""

    async def read(self) -> cluster_state.ClusterState: ...

    async def reserve(self, *, now: datetime.datetime) -> decisions.Decision: ...

    async def return_budget(self, *, now: datetime.datetime) -> None: ...


class MemoryReader(Protocol):
    """The Prometheus analysis of a workload's memory between two times (None: not available now)."""

    async def read(
        self,
        *,
        target: targets.Target,
        container: str | None,
        since: datetime.datetime,
        until: datetime.datetime,
    ) -> follow_ups.MemoryReading | None: ...


class PrometheusMemory:
    """`MemoryReader` over the Prometheus reader and the classifier (runbook Step 3): the workload's memory
    from the mitigation to the verdict (within Prometheus' lookback bounds), as a verdict reads it. An
    analysis that cannot say (Prometheus absent, slow, no data) reads as None: the verdict then rests on the
    pod state and says so. Build once; `await close()` at shutdown."""

    _MIN_LOOKBACK_SECONDS = 3600.0
    _MAX_LOOKBACK_SECONDS = 7 * 86400.0

    def __init__(
        self,
        config: settings.PrometheusSettings,
        *,
        authorization: str | None,
        metrics: metrics_mod.Metrics | None,
    ) -> None:
        self.config = config
        self.authorization = authorization
        self.metrics = metrics
        self.reader = reading.Reader(config, authorization=authorization, metrics=metrics)

    async def close(self) -> None:
        await self.reader.close()

    async def read(
        self,
        *,
        target: targets.Target,
        container: str | None,
        since: datetime.datetime,
        until: datetime.datetime,
    ) -> follow_ups.MemoryReading | None:
        lookback = min(
            max((until - since).total_seconds(), self._MIN_LOOKBACK_SECONDS), self._MAX_LOOKBACK_SECONDS
        )
        # The same session and bounds, over the time since the mitigation rather than the configured window.
        windowed = reading.Reader(
            self.config.model_copy(update={"lookback_seconds": lookback}),
            authorization=self.authorization,
            metrics=self.metrics,
            session=self.reader.session,
        )
        analysis = await reading.investigate(
            windowed,
            namespace=target.namespace,
            kind=target.kind.value,
            name=target.name,
            container=container,
            now=until.timestamp(),
        )
        return following.reading_from_analysis(analysis)


_ANALYSIS_WINDOW = datetime.timedelta(hours=6)
"""How far back the memory analysis looks when a schedule's interval is derived from the time to OOM."""


_RESTARTABLE = actions.traits_of(actions.Action.SCHEDULED_RESTART).kinds


def _entries_of(workload: client.Body) -> list[ledgers.LedgerEntry]:
    return ledgers.load(((workload.get("metadata") or {}).get("annotations") or {}).get(ledgers.ANNOTATION))


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclasses.dataclass
class _Job:
    stored: store_mod.Stored
    taken_over_from: str | None
    """The replica whose claim lapsed (it died or hung), when this replica took the record over from it."""


class Following:
    """The follow-up poller and worker of one replica. `start()` after the event loop runs, `close()` at
    shutdown; `tick()` runs one poll (tests call it with an injected clock)."""

    def __init__(
        self,
        *,
        settings: settings.Settings,
        metrics: metrics_mod.Metrics,
        kube: client.Kube,
        store: store_mod.FollowUpStore,
        state_store: StateStore,
        notifiers: Notifier,
        identity: str,
        own_namespace: str,
        clock: Clock = _utcnow,
        memory: MemoryReader | None = None,
        guard: Callable[..., decisions.Decision] = guarding.guard,
        quieter: quieting.Quieter | None = None,
    ) -> None:
        self.settings = settings
        self.config = settings.follow_up
        self.metrics = metrics
        self.kube = kube
        self.store = store
        self.state_store = state_store
        self.notifiers = notifiers
        self.identity = identity
        self.own_namespace = own_namespace
        self.clock = clock
        self.memory = memory
        self.guard = guard
        self.quieter = quieter
        """Expires a mitigation's Alertmanager silence when its verdict or taken-over verification fails."""
        self._working: dict[str, asyncio.Task[None]] = {}
        self._held: set[tuple[str, datetime.datetime]] = set()
        self._previous: dict[tuple[str, str], follow_ups.FollowUp | None] = {}
        """(workload key, incident) → the record before `before_write` replaced it, to put back if the write
        does not happen."""
        """(workload key, write time) of the verifications this process recorded and follows itself."""
        self._poller: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    @property
    def dry_run(self) -> bool:
        return self.settings.mode is settings.Mode.DRY_RUN

    # ---- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._poller is None:
            self._poller = asyncio.create_task(self._poll(), name="follow-ups")

    def wake(self) -> None:
        """Poll now rather than at the next interval (a record was just written by this process)."""
        self._wake.set()

    async def wait_idle(self) -> None:
        """Until no record is being worked on (tests)."""
        while self._working:
            await asyncio.gather(*list(self._working.values()), return_exceptions=True)

    async def close(self, timeout_seconds: float) -> None:
        """Stop polling; let the steps under way finish within `timeout_seconds`, then cancel them (their
        claims lapse and another replica finishes the work); close the memory reader."""
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
            self._poller = None
        if self._working:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wait_idle(), timeout=timeout_seconds)
        for task in list(self._working.values()):
            task.cancel()
        await asyncio.gather(*list(self._working.values()), return_exceptions=True)
        if isinstance(self.memory, PrometheusMemory):
            await self.memory.close()

    async def _poll(self) -> None:
        while True:
            try:
                await self.tick()
            except errors.KubeError as e:
                logger.warning("follow-ups: could not list the records: %s", e.message)
            except Exception:
                logger.exception("follow-ups: poll failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.config.poll_seconds)

    # ---- creating records (called by the engine after a mitigation) -------------------------------------------

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

    async def follow_now(self, target: targets.Target) -> None:
        """Work on the record of `target` now, under the claim `track(claim=True)` took (the replica that
        wrote a rollout follows it at once, as before; the record makes it durable)."""
        stored = await self.store.read(target)
        if stored is None or stored.record is None or stored.name in self._working:
            return
        claim = stored.record.claim
        if claim is None or claim.holder != self.identity:
            return
        await self._spawn(_Job(stored, None))

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

            def change(current: follow_ups.FollowUp | None) -> follow_ups.FollowUp:
                before[:] = [current]
                merged = following.add_incident(current, record).model_copy(update={"confirmed": False})
                claimed = following.claim(
                    merged, holder=self.identity, now=now, seconds=self.config.claim_seconds
                )
                return claimed or merged

            await self.store.update(target, change)
            self._previous[(target.key, record.incident)] = before[0] if before else None
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
        self._previous.pop((target.key, plan.occurrence_id), None)
        try:
            # No LIST of the pods here (a mitigation costs no extra request for it): the alerted pod's restart
            # counts were kept ahead of the write, and a pod older than the mitigation seen first at a
            # verdict is counted from that look on (`following.judge`).
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
            return following.release(current.model_copy(update={"verification": None}), holder=self.identity)

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
                time_to_oom = following.time_to_oom_from_pods(pods, container=container)
        return following.new_schedule(
            options=options,
            playbook=playbook,
            incident=incident,
            workload=workload,
            now=now,
            time_to_oom_seconds=time_to_oom,
        )

    # ---- polling ---------------------------------------------------------------------------------------------

    async def tick(self) -> list[asyncio.Task[None]]:
        """One poll: claim every record that is due and not held, and start working on each. Returns the
        tasks started (tests wait for them)."""
        now = self.clock()
        found = await self.store.list()
        self._count(found)
        started: list[asyncio.Task[None]] = []
        for stored in found:
            if stored.name in self._working:
                continue
            if stored.record is None:
                if not stored.reported:
                    await self._report_unreadable(stored)
                continue
            record = stored.record
            if record.ended is not None:
                continue  # a tombstone: nothing to do until the workload's next mitigation reuses it
            due = following.due_at(record, verification_poll_seconds=self.settings.verification.poll_seconds)
            if due is not None and due > now:
                continue
            if not following.is_claimable(record, now=now):
                continue
            claimed = following.claim(
                record, holder=self.identity, now=now, seconds=self.config.claim_seconds
            )
            if claimed is None:
                continue
            try:
                held = await self.store.replace(stored, claimed)
            except (errors.KubeConflict, errors.KubeNotFound):
                continue  # another replica claimed (or changed) it first
            except errors.KubeError as e:
                logger.warning("follow-up %s could not be claimed: %s", stored.name, e.message)
                continue
            previous = record.claim.holder if record.claim is not None else None
            task = await self._spawn(_Job(held, previous if previous != self.identity else None))
            started.append(task)
        return started

    async def _spawn(self, job: _Job) -> asyncio.Task[None]:
        task = asyncio.create_task(self._work(job), name=f"follow-up:{job.stored.name}")
        self._working[job.stored.name] = task
        task.add_done_callback(lambda _: self._working.pop(job.stored.name, None))
        return task

    def _count(self, found: Sequence[store_mod.Stored]) -> None:
        counts = {"verdicts": 0, "schedule": 0, "verification": 0, "unreadable": 0}
        for stored in found:
            record = stored.record
            if record is None:
                counts["unreadable"] += 1
                continue
            if record.ended is not None:
                continue
            if any(h.verdict is None for h in record.horizons):
                counts["verdicts"] += 1
            if record.schedule is not None and record.schedule.stopped is None:
                counts["schedule"] += 1
            if record.verification is not None:
                counts["verification"] += 1
        for holding, count in counts.items():
            self.metrics.follow_ups.labels(holding).set(count)

    # ---- working on one record -------------------------------------------------------------------------------

    async def _work(self, job: _Job) -> None:
        record = job.stored.record
        assert record is not None
        target = record.target
        try:
            await self._steps(record, job)
        except errors.KubeError as e:
            logger.warning(
                "follow-up of %s interrupted: %s (the claim lapses; it is retried)", target.key, e.message
            )
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("follow-up of %s failed", target.key)
        finally:
            with contextlib.suppress(errors.KubeError):
                await self._commit(target, self._released)

    async def _steps(self, first: follow_ups.FollowUp, job: _Job) -> None:
        target = first.target
        workload = await fetching.read_optional(self.kube, fetching.workload_path(target))
        uid = str(((workload or {}).get("metadata") or {}).get("uid") or "") or None
        if workload is None or (first.uid is not None and uid is not None and uid != first.uid):
            await self._end_gone(first, replaced=workload is not None)
            return
        if first.ended is not None:
            await self._finish(first)
            return
        if not first.confirmed:
            confirmed = await self._confirm(first, workload)
            if confirmed is None:
                return
            first = confirmed
        record: follow_ups.FollowUp | None = first
        if first.verification is not None:
            await self._verify(
                first, first.verification, workload=workload, taken_over_from=job.taken_over_from
            )
            record = await self._reread(target)
            workload = await fetching.read_optional(self.kube, fetching.workload_path(target)) or workload
        if record is not None and record.schedule is not None and record.schedule.stopped is None:
            await self._schedule_step(record, record.schedule, workload)
            record = await self._reread(target)
        if record is None:
            return
        pending = [h for h in record.horizons if h.verdict is None]
        if pending and pending[0].due_at <= self.clock():
            await self._verdict_step(record, pending[0], workload)
            record = await self._reread(target)
        if record is not None and following.is_finished(record):
            await self._finish(record)

    async def _confirm(
        self, record: follow_ups.FollowUp, workload: client.Body
    ) -> follow_ups.FollowUp | None:
        """A record written ahead of a mitigation whose writer let go of it (died, or the write failed with
        no answer): the workload's ledger says whether the write happened. Confirmed, it goes on from here
        (the rollout of the workload's current generation is followed); otherwise it is dropped."""
        metadata = workload.get("metadata") or {}
        entries = ledgers.load((metadata.get("annotations") or {}).get(ledgers.ANNOTATION))
        written = any(e.occurrence == record.incident and e.action is record.action for e in entries)
        pods: list[client.Body] = []
        if written:
            with contextlib.suppress(errors.KubeError):
                pods = await self._pods(record.target, workload)
        generation = int(metadata.get("generation") or 0)

        def change(current: follow_ups.FollowUp) -> follow_ups.FollowUp | store_mod._Delete | None:
            if current.incident != record.incident or current.confirmed:
                return None
            if not written:
                return store_mod.DELETE
            update: dict[str, object] = {
                "confirmed": True,
                "restarts": following.restart_counts(pods, container=current.container),
            }
            if current.verification is not None and current.verification.generation == 0:
                update["verification"] = current.verification.model_copy(update={"generation": generation})
            return current.model_copy(update=update)

        applied, after = await self._commit(record.target, change)
        if applied and not written:
            logger.info(
                "the mitigation of %s was never written: its follow-up is dropped",
                record.target.key,
                extra={"target": record.target.key, "incident": record.incident},
            )
        return after if applied and written else None

    async def _reread(self, target: targets.Target) -> follow_ups.FollowUp | None:
        stored = await self.store.read(target)
        if stored is None or stored.record is None or stored.record.ended is not None:
            return None
        return stored.record

    async def _commit(
        self,
        target: targets.Target,
        change: Callable[[follow_ups.FollowUp], follow_ups.FollowUp | store_mod._Delete | None],
    ) -> tuple[bool, follow_ups.FollowUp | None]:
        """Apply `change` to the stored record by compare-and-swap; True when this call's write changed it
        (so this replica, and no other, reports the step)."""
        applied = [False]

        def wrapped(current: follow_ups.FollowUp | None) -> follow_ups.FollowUp | store_mod._Delete | None:
            applied[0] = False
            if current is None:
                return None
            result = change(current)
            applied[0] = result is not None
            return result

        after = await self.store.update(target, wrapped)
        return applied[0], after

    # ---- steps ------------------------------------------------------------------------------------------------

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
        closed, text = following.closing_summary(record)
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

    async def _closing_event(self, record: follow_ups.FollowUp) -> None:
        closed, text = following.closing_summary(record)
        if closed:
            await self._event(
                record, verb="close", reason="closed", note=f"incident closed: {text}", warning=False
            )
        else:
            await self._event(
                record, verb="close", reason="not_closed", note=f"follow-up over: {text}", warning=True
            )

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
        verdict, counts = following.judge(
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
                    lambda current: following.with_verdict(
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
                    updated, _ = following.after_verdict(updated, verdict.kind, now=now)
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
            closed, text = following.closing_summary(final[0])
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

    async def _pods(self, target: targets.Target, workload: client.Body) -> list[client.Body]:
        """The workload's pods (by its selector), those being deleted left out."""
        selector = following.pod_selector(workload)
        if selector is None:
            return []
        found = await self.kube.list(
            f"/api/v1/namespaces/{target.namespace}/pods", query={"labelSelector": selector}
        )
        return [pod for pod in found if not (pod.get("metadata") or {}).get("deletionTimestamp")]

    async def _read_memory_between(
        self,
        target: targets.Target,
        container: str | None,
        *,
        since: datetime.datetime,
        until: datetime.datetime,
    ) -> follow_ups.MemoryReading | None:
        if self.memory is None:
            return None
        try:
            return await self.memory.read(target=target, container=container, since=since, until=until)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # an optional part: the verdict goes on from the pod state and says so
            logger.warning("follow-up of %s: memory analysis unavailable: %s", target.key, e)
            return None

    # ---- restart schedules ------------------------------------------------------------------------------------

    async def _schedule_step(
        self, record: follow_ups.FollowUp, schedule: follow_ups.Schedule, workload: client.Body
    ) -> None:
        now = self.clock()
        stop = following.schedule_stop(schedule, now=now, workload=workload)
        if stop is not None:
            reason, detail = stop
            await self._stop(record, schedule, reason, detail, workload=workload)
            return
        if now < schedule.next_at:
            return
        target = record.target
        number = schedule.count + 1
        occurrence = following.restart_occurrence(schedule, number)
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
        entry = following.restart_entry(
            schedule=schedule,
            workload=workload,
            now=now,
            identity=self.identity,
            thread=self._thread(record, entries),
        )
        try:
            await self.kube.patch(
                fetching.workload_path(target), following.restart_patch(workload=workload, entry=entry)
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
        if following.is_scaled_to_zero(workload):
            return (
                decisions.Decision.refuse(decisions.Reason.NOT_SCALABLE, "scaled to 0"),
                "skipped: the workload is scaled to 0, there is nothing to restart",
            )
        if following.is_paused(workload):
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
            updated = current.model_copy(update={"schedule": following.after_restart(s, now=now)})
            if s.max_count is not None and s.count + 1 >= s.max_count:
                # The last one: the schedule ends with it, rather than one interval later.
                updated = following.stop_schedule(updated, follow_ups.StopReason.MAX_COUNT, now=now)
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
            stopped = following.stop_schedule(current, reason, now=now)
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

    async def _announce_stop(
        self, record: follow_ups.FollowUp, schedule: follow_ups.Schedule, detail: str
    ) -> None:
        reason = schedule.stopped.value if schedule.stopped else "stopped"
        self._notify(
            record,
            summary=f"Restart schedule of {record.target.key} stopped ({reason.replace('_', ' ')}) after "
            f"{schedule.count} restart(s)",
            detail=detail,
            outcome=decisions.Outcome.DONE,
            action=settings.Action.ROLLOUT_RESTART,
        )
        await self._event(
            record,
            verb="schedule_stop",
            reason=f"stopped:{reason}",
            note=f"restart schedule stopped: {detail}",
            warning=False,
        )

    # ---- verification of a rollout ----------------------------------------------------------------------------

    def _released(self, record: follow_ups.FollowUp) -> follow_ups.FollowUp | None:
        if record.claim is None or record.claim.holder != self.identity:
            return None
        return following.release(record, holder=self.identity)

    def _renewed(self, record: follow_ups.FollowUp) -> follow_ups.FollowUp | None:
        return following.claim(
            record, holder=self.identity, now=self.clock(), seconds=self.config.claim_seconds
        )

    async def _renew(self, target: targets.Target) -> None:
        """Keep this replica's claim alive while a long step runs (a rollout can take minutes)."""
        while True:
            await asyncio.sleep(self.config.claim_seconds / 3)
            with contextlib.suppress(errors.KubeError):
                await self._commit(target, self._renewed)

    async def _verify(
        self,
        record: follow_ups.FollowUp,
        verification: follow_ups.Verification,
        *,
        workload: client.Body,
        taken_over_from: str | None,
    ) -> None:
        target = record.target
        now = self.clock()
        renewing = asyncio.create_task(self._renew(target), name=f"renew:{target.key}")
        try:
            verdict = await verifying.follow(
                self.kube,
                target=target,
                generation=verification.generation,
                since=verification.since,
                timeout_seconds=max(0.0, (verification.deadline - now).total_seconds()),
                poll_seconds=self.settings.verification.poll_seconds,
            )
        finally:
            renewing.cancel()
            await asyncio.gather(renewing, return_exceptions=True)
        reverted = await self._record_result(record, verification, verdict.outcome)

        def change(current: follow_ups.FollowUp) -> follow_ups.FollowUp | None:
            if current.verification != verification:
                return None
            return current.model_copy(update={"verification": None})

        applied, _ = await self._commit(target, change)
        if not applied:
            return
        detail = verdict.detail + reverted
        if taken_over_from:
            detail += f" Picked up by {self.identity} after {taken_over_from} stopped following it."
        failed = verdict.outcome is decisions.Outcome.FAILED
        if failed:
            # The mitigation did not take: the alert must be heard again now, not at the silence's end.
            detail += await self._expire_silence(
                record, _entries_of(workload), why=f"the rollout of {verification.summary} failed"
            )
        if failed:
            self.metrics.actions.labels(
                record.playbook, verification.action.value, decisions.Outcome.FAILED.value
            ).inc()
        self._notify(
            record,
            kind=notices.NoticeKind.VERIFICATION,
            summary=f"{verification.summary}: rollout {'failed' if failed else 'completed'}",
            detail=detail,
            outcome=verdict.outcome,
            action=verification.action,
            reason=decisions.Reason.ROLLOUT_FAILED if failed else decisions.Reason.ROLLOUT_COMPLETE,
            from_value=verification.from_value,
            to_value=verification.to_value,
        )
        await self._event(
            record,
            verb="verify",
            reason=f"{verdict.outcome.value}:{(decisions.Reason.ROLLOUT_FAILED if failed else decisions.Reason.ROLLOUT_COMPLETE).value}"
            if failed
            else verdict.outcome.value,
            note=f"[{record.playbook}] verification: {detail}",
            warning=failed,
        )

    async def _record_result(
        self, record: follow_ups.FollowUp, verification: follow_ups.Verification, outcome: decisions.Outcome
    ) -> str:
        """The verification's result into the mitigation's ledger entry (and the revert of a failed raise,
        in the same write); the sentence to add to the notice about a revert."""
        change = None
        if (
            outcome is decisions.Outcome.FAILED
            and verification.revert_on_failure
            and verification.container is not None
            and verification.limit_to is not None
        ):
            change = raise_memory.MemoryChange(
                container=verification.container,
                limit_from=verification.limit_from,
                limit_to=verification.limit_to,
                request_from=verification.request_from,
                request_to=verification.request_to,
            )
        still: list[bool] = []

        def ledger_change(entries: list[ledgers.LedgerEntry]) -> list[ledgers.LedgerEntry] | None:
            updated = [
                entry.model_copy(update={"result": outcome})
                if entry.occurrence == record.incident
                and entry.action is verification.action
                and entry.result is not outcome
                else entry
                for entry in entries
            ]
            return updated if updated != entries or change is not None else None

        def revert_patch(workload: client.Body) -> dict[str, object] | None:
            if change is None:
                return None
            still[:] = [
                raise_memory.still_raised(
                    mutations.WorkloadSnapshot(target=record.target, workload=workload), change
                )
            ]
            return raise_memory.revert_patch(change) if still[0] else None

        written = await patching.update_ledger(
            self.kube,
            record.target,
            ledger_change,
            attempts=patching.LEDGER_WRITE_ATTEMPTS,
            extra_for=revert_patch if change is not None else None,
        )
        if change is None:
            return ""
        if not written:
            return " Not reverted: the workload could not be written."
        if still == [True]:
            return f" Reverted to {verification.from_value}."
        return " Not reverted: the limit was changed since the raise."

    async def _expire_silence(
        self, record: follow_ups.FollowUp, entries: Sequence[ledgers.LedgerEntry], *, why: str
    ) -> str:
        """End the Alertmanager silence the mitigation earned (best effort: Alertmanager down changes
        nothing but this sentence); the sentence for the notice, empty when there is no silence."""
        silence_id = next(
            (
                entry.silence
                for entry in entries
                if entry.occurrence == record.incident and entry.action is record.action and entry.silence
            ),
            None,
        )
        if silence_id is None or self.quieter is None:
            return ""
        try:
            line = await self.quieter.expire(silence_id, why=why)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # an optional part: the verdict stands whatever Alertmanager says
            logger.warning("follow-up of %s: silence %s not expired: %s", record.target.key, silence_id, e)
            line = f"silence {silence_id} could not be expired ({e}); it ends on its own at its end time"
        return f" Alertmanager: {line}."

    # ---- reporting --------------------------------------------------------------------------------------------

    def _thread(self, record: follow_ups.FollowUp, entries: Sequence[ledgers.LedgerEntry] = ()) -> str | None:
        return threads.find_thread(entries, record.incident) or record.thread

    def _notify(
        self,
        record: follow_ups.FollowUp,
        *,
        summary: str,
        detail: str,
        outcome: decisions.Outcome,
        kind: notices.NoticeKind = notices.NoticeKind.FOLLOW_UP,
        action: settings.Action | None = None,
        reason: decisions.Reason | None = None,
        guardrail: decisions.Guardrail | None = None,
        from_value: str | None = None,
        to_value: str | None = None,
        dry_run: bool = False,
    ) -> None:
        logger.info(
            "%s",
            summary,
            extra={
                "target": record.target.key,
                "incident": record.incident,
                "outcome": outcome.value,
                "detail": detail,
            },
        )
        self.notifiers.notify(
            notices.Notice(
                kind=kind,
                at=self.clock(),
                incident=record.incident,
                summary=summary,
                target=record.target,
                playbook=record.playbook,
                action=action,
                outcome=outcome,
                reason=reason,
                guardrail=guardrail,
                from_value=from_value,
                to_value=to_value,
                dry_run=dry_run,
                detail=detail,
                thread=record.thread,
            )
        )

    async def _event(
        self, record: follow_ups.FollowUp, *, verb: str, reason: str, note: str, warning: bool
    ) -> None:
        await events.record(
            self.kube,
            target=record.target,
            uid=record.uid,
            action=verb,
            reason=reason,
            note=f"[{record.playbook}] {'(dry-run) ' if self.dry_run else ''}{note}",
            warning=warning,
            identity=self.identity,
            now=self.clock(),
        )

    async def _report_unreadable(self, stored: store_mod.Stored) -> None:
        """A record that fails validation (edited by hand): say so once, touch nothing it names."""
        try:
            marked = await self.store.mark_reported(stored)
        except errors.KubeError as e:
            # Reported only once it is marked, so that it is not reported again on every poll.
            logger.warning("follow-up record %s unreadable, and cannot be marked: %s", stored.name, e.message)
            return
        if not marked:
            return  # changed meanwhile (or reported by another replica): looked at again on the next poll
        where = stored.target_key or "an unknown workload"
        logger.warning(
            "follow-up record unreadable",
            extra={"record": stored.name, "target": where, "error": stored.error},
        )
        self.notifiers.notify(
            notices.Notice(
                kind=notices.NoticeKind.ESCALATION,
                at=self.clock(),
                incident=f"follow-up:{stored.name}",
                summary=f"Follow-up record {self.store.namespace}/{stored.name} of {where} is unreadable; "
                "its verdicts and restarts are on hold",
                outcome=decisions.Outcome.ESCALATED,
                reason=decisions.Reason.INVALID,
                detail=f"{stored.error}. Fix it, or remove it with `oom-responder schedules cancel {where}`.",
            )
        )
