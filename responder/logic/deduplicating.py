"""Deduplicating: remembering which alert occurrences were already queued.

An occurrence is one firing of one alert (fingerprint + startsAt), which Alertmanager keeps across repeat
notifications and HA peers. The memory is bounded in size and age, so it stays flat however many alerts
arrive. No I/O; the clock is injected. Callers mark an occurrence seen only after the queue accepted it, so a
rejected webhook (503) is retried by Alertmanager and not mistaken for a duplicate.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from responder.models import alerts, settings

__all__ = ["Deduplicator", "occurrence_key"]

# Deletions leave empty slots in a dict's entry table, and finding its first entry walks over the ones at the
# front: after this many deletions (and more than an eighth of the entries) the dict is rebuilt without them.
# The rebuild is a pause of a few ms at 100,000 entries, once per 12,500 deletions; rebuilding less often
# makes every walk longer (measured with 1-alert webhooks: 2.5 µs per alert at an eighth, 5.7 at a half).
_MIN_HOLES = 1024
_HOLES_PER_ENTRY = 0.125


def occurrence_key(event: alerts.AlertEvent) -> str:
    """The cache key: firing and resolved notifications of one occurrence are deduplicated separately."""
    if event.status is alerts.AlertStatus.RESOLVED:
        return f"{event.occurrence_id}:resolved"
    return event.occurrence_id


class Deduplicator:
    """A bounded TTL set of occurrence keys.

    A plain dict of key → expiry time. The TTL is one constant and the timer never goes back, so insertion
    order is expiry order: expired entries, and the oldest ones when over `max_entries`, are always at the
    front. Marking a key again moves it to the end. Unlike a cache of linked entries, a dict of strings and
    floats holds no object the garbage collector has to walk (100,000 entries are a full collection's worth of
    pause otherwise), and takes less than half the memory.
    """

    def __init__(
        self, *, max_entries: int, ttl_seconds: float, timer: Callable[[], float] = time.monotonic
    ) -> None:
        if max_entries <= 0 or ttl_seconds <= 0:
            raise ValueError("max_entries and ttl_seconds must be positive")
        self._max_entries = max_entries
        self._ttl = ttl_seconds
        self._timer = timer
        self._expiry: dict[str, float] = {}
        self._holes = 0

    @classmethod
    def from_settings(cls, dedup: settings.DedupSettings) -> Deduplicator:
        return cls(max_entries=dedup.max_entries, ttl_seconds=dedup.ttl_seconds)

    def is_seen(self, key: str) -> bool:
        expires = self._expiry.get(key)
        if expires is None:
            return False
        now = self._timer()
        if now < expires:
            return True
        # Expired, and so is everything marked before it: drop them all from the front.
        self._trim(now)
        return False

    def mark_seen(self, keys: Iterable[str]) -> None:
        now = self._timer()
        expires = now + self._ttl
        expiry = self._expiry
        for key in keys:
            if expiry.pop(key, None) is not None:
                self._holes += 1
            expiry[key] = expires
        self._trim(now)

    def forget(self, key: str) -> None:
        """Take the occurrence again on its next delivery (its handling met an obstacle that may pass)."""
        if self._expiry.pop(key, None) is not None:
            self._holes += 1

    def __len__(self) -> int:
        return len(self._expiry)

    def _trim(self, now: float) -> None:
        """Drop expired entries and the oldest beyond `max_entries`: all of them at the front, in one walk."""
        expiry = self._expiry
        excess = len(expiry) - self._max_entries
        doomed: list[str] = []
        for key, expires in expiry.items():
            if excess > 0:
                excess -= 1
            elif expires > now:
                break
            doomed.append(key)
        for key in doomed:
            del expiry[key]
        self._holes += len(doomed)
        if self._holes > _MIN_HOLES and self._holes > len(expiry) * _HOLES_PER_ENTRY:
            # Inserting one by one builds a table without the empty slots (a plain copy may keep them).
            self._expiry = dict(expiry.items())
            self._holes = 0
