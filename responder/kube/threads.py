"""Keeping an incident's Slack thread with the incident: in the workload's ledger, and in memory.

Stage: kube edge (one read and one write per new thread). After the first message of an incident is posted,
its ts is stored in the ledger entry of that occurrence (`oom-responder.io/ledger`, field `thread`) by a merge
patch carrying the workload's resourceVersion as precondition, retried on 409 with a fresh read. The engine
reads it back with `find_thread()` when it builds a follow-up notice, so threading survives restarts and
holds across replicas. The first thread stored wins: a replica that posted later does not overwrite it.

Best effort by design: a notice without a ledger entry (a refusal, a dry run) is kept in memory only, and a
failure here is logged and reported as `False`, never raised into the notification path.
It must not post messages nor decide anything about mitigations.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import cachetools

from responder.kube import client, errors, patching
from responder.logic import resolving
from responder.models import ledgers, notices, targets

__all__ = ["ThreadKeeper", "find_thread", "store_thread", "with_thread"]

logger = logging.getLogger(__name__)


def find_thread(entries: Sequence[ledgers.LedgerEntry], occurrence: str) -> str | None:
    """The thread ts kept for `occurrence` in a ledger, if any. Pure.

    The one reading is `resolving.thread_of`: `with_thread` writes one ts on every entry of an occurrence, so
    the first and the newest entry carrying one agree.
    """
    return resolving.thread_of(entries, occurrence)


def with_thread(
    entries: Sequence[ledgers.LedgerEntry], occurrence: str, ts: str
) -> list[ledgers.LedgerEntry] | None:
    """The ledger with `ts` set on every entry of `occurrence`; None when there is nothing to write.

    Nothing to write: no entry of that occurrence (nothing was done for it, or it aged out of the bounded
    ledger), or a thread is already kept for it (the first one wins, so replicas converge on one thread).
    Pure.
    """
    if find_thread(entries, occurrence) is not None:
        return None
    if not any(entry.occurrence == occurrence for entry in entries):
        return None
    return [
        entry.model_copy(update={"thread": ts}) if entry.occurrence == occurrence else entry
        for entry in entries
    ]


async def store_thread(
    kube: client.Kube, *, target: targets.Target, occurrence: str, ts: str, conflict_attempts: int = 5
) -> bool:
    """Write `ts` into the ledger entry of `occurrence` on the workload; True when written.

    A 409 means someone (a mitigation, another replica) wrote in between: `patching.update_ledger` reads
    again and redoes it, up to `conflict_attempts` times.
    """
    if await patching.update_ledger(
        kube, target, lambda entries: with_thread(entries, occurrence, ts), attempts=conflict_attempts
    ):
        return True
    logger.info(
        "Slack thread kept in memory only: no ledger entry for it, the workload is gone, or it kept changing",
        extra={"target": target.key, "incident": occurrence},
    )
    return False


class ThreadKeeper:
    """The engine's thread recorder (`responder.engine.notifying.ThreadRecorder`): memory plus the ledger."""

    def __init__(
        self, kube: client.Kube | None, *, conflict_attempts: int = 5, max_entries: int = 10_000
    ) -> None:
        self._kube = kube
        self._conflict_attempts = conflict_attempts
        self._threads: cachetools.LRUCache[str, str] = cachetools.LRUCache(maxsize=max_entries)

    def lookup(self, incident: str) -> str | None:
        """The thread this process knows for an incident (posted or recorded here)."""
        return self._threads.get(incident)

    async def record(self, notice: notices.Notice, ts: str) -> bool:
        """Remember the thread; store it in the ledger when the notice's workload has an entry for it.

        True when the ledger was written. Never raises for API failures (logged instead).
        """
        if notice.incident in self._threads:
            return False
        self._threads[notice.incident] = ts
        if self._kube is None or notice.target is None or notice.event is None:
            return False
        try:
            return await store_thread(
                self._kube,
                target=notice.target,
                occurrence=notice.incident,
                ts=ts,
                conflict_attempts=self._conflict_attempts,
            )
        except errors.KubeError as e:
            logger.warning(
                "could not keep the Slack thread in the ledger",
                extra={"target": notice.target.key, "incident": notice.incident, "error": str(e)},
            )
            return False
