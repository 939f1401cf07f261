"""Staying with an incident after the mitigation: the poll and claim loop that runs every follow-up job.

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

`Following` is the whole of it as the engine sees it; this module only polls, claims, and runs a claimed
record's steps in order. The steps are the jobs of `recording` (records around a mitigation), `judging`
(verdicts, the end of a follow-up), `restarting` (scheduled restarts) and `resuming` (work another replica
left); `announcing` holds what they share and reports. Nothing here decides (`responder.logic.following`,
`verdicts`, `schedules`), writes a workload or reports an outcome itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Sequence

from responder.engine import judging, measuring, recording, restarting, resuming
from responder.kube import errors, fetching
from responder.kube import follow_ups as store_mod
from responder.logic import following
from responder.models import follow_ups, targets

__all__ = ["Following"]

_MIN_POLL_GAP_SECONDS = 5.0
"""The least time between two polls (or `poll_seconds` when shorter), however often this process's writes
ask for one."""

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class _Job:
    stored: store_mod.Stored
    taken_over_from: str | None
    """The replica whose claim lapsed (it died or hung), when this replica took the record over from it."""


class Following(recording.Recording, judging.Judging, restarting.Restarting, resuming.Resuming):
    """The follow-up poller and worker of one replica. `start()` after the event loop runs, `close()` at
    shutdown; `tick()` runs one poll (tests call it with an injected clock)."""

    def start(self) -> None:
        if self._poller is None:
            self._poller = asyncio.create_task(self._poll(), name="follow-ups")

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
        if isinstance(self.memory, measuring.PrometheusMemory):
            await self.memory.close()

    async def _poll(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.tick()
            except errors.KubeError as e:
                logger.warning("follow-ups: could not list the records: %s", e.message)
            except Exception:
                logger.exception("follow-ups: poll failed")
            # Woken by this process's writes, the poll still waits a moment first: a storm of mitigations
            # wakes it hundreds of times, and each poll is a LIST.
            await asyncio.sleep(min(self.config.poll_seconds, _MIN_POLL_GAP_SECONDS))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._wake.wait(),
                    timeout=max(0.0, self.config.poll_seconds - _MIN_POLL_GAP_SECONDS),
                )

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
