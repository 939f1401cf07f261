"""The footing every follow-up job stands on, and the saying of what a follow-up did.

Stage: follow. `Announcing` holds one replica's follow-up dependencies (store, cluster, clock, identity,
notifiers, memory reader, quieter) and the steps all jobs share: the compare-and-swap commit of a record
(the replica whose commit changed it, and no other, reports the step), re-reading a record, the workload's
pods, the optional memory reading, keeping a claim alive, expiring a silence, and reporting an outcome (a
notice, a Kubernetes Event, a log line). The jobs (`recording`, `judging`, `restarting`, `resuming`) and the
poller (`following`) build on it. It decides nothing (`responder.logic.following`, `verdicts` and
`schedules` do), never swallows `CancelledError` and never catches `ApiException` (only
`responder.kube.errors`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from responder import metrics as metrics_mod
from responder.engine import measuring, quieting
from responder.kube import client, errors, events, threads
from responder.kube import follow_ups as store_mod
from responder.logic import following, guarding, verdicts
from responder.models import cluster_state, decisions, follow_ups, ledgers, notices, settings, targets

__all__ = ["Announcing", "Clock", "Notifier", "StateStore", "ledger_entries"]

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime.datetime]


class Notifier(Protocol):
    def notify(self, notice: notices.Notice) -> None: ...


class StateStore(Protocol):
    """The cluster-wide guardrail state (`responder.kube.state.StateStore`)."""

    async def read(self) -> cluster_state.ClusterState: ...

    async def reserve(self, *, now: datetime.datetime) -> decisions.Decision: ...

    async def return_budget(self, *, now: datetime.datetime) -> None: ...


def ledger_entries(workload: client.Body) -> list[ledgers.LedgerEntry]:
    """The workload's ledger entries (none when it has no readable ledger)."""
    return ledgers.load(((workload.get("metadata") or {}).get("annotations") or {}).get(ledgers.ANNOTATION))


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class Announcing:
    """One replica's follow-up dependencies and the steps its jobs share."""

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
        memory: measuring.MemoryReader | None = None,
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
        """(workload key, write time) of the verifications this process recorded and follows itself."""
        self._previous: dict[tuple[str, str], follow_ups.FollowUp | None] = {}
        """(workload key, incident) → the record before `before_write` replaced it, to put back if the write
        does not happen."""
        self._claimed_ahead: set[tuple[str, str]] = set()
        """(workload key, incident) whose record `before_write` wrote claimed by this replica."""
        self._poller: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    @property
    def dry_run(self) -> bool:
        return self.settings.mode is settings.Mode.DRY_RUN

    def wake(self) -> None:
        """Poll now rather than at the next interval (a record was just written by this process)."""
        self._wake.set()

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

    async def _closing_event(self, record: follow_ups.FollowUp) -> None:
        closed, text = verdicts.closing_summary(record)
        if closed:
            await self._event(
                record, verb="close", reason="closed", note=f"incident closed: {text}", warning=False
            )
        else:
            await self._event(
                record, verb="close", reason="not_closed", note=f"follow-up over: {text}", warning=True
            )

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
