"""Deduplicating: remembering which alert occurrences were already queued.

An occurrence is one firing of one alert (fingerprint + startsAt), which Alertmanager keeps across repeat
notifications and HA peers. The cache is bounded in size and age, so memory stays flat however many alerts
arrive. No I/O; the clock is injected. Callers mark an occurrence seen only after the queue accepted it, so a
rejected webhook (503) is retried by Alertmanager and not mistaken for a duplicate.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import cachetools

from responder.models import alerts, settings

__all__ = ["Deduplicator", "occurrence_key"]


def occurrence_key(event: alerts.AlertEvent) -> str:
    """The cache key: firing and resolved notifications of one occurrence are deduplicated separately."""
    if event.status is alerts.AlertStatus.RESOLVED:
        return f"{event.occurrence_id}:resolved"
    return event.occurrence_id


class Deduplicator:
    """A bounded TTL set of occurrence keys."""

    def __init__(
        self, *, max_entries: int, ttl_seconds: float, timer: Callable[[], float] = time.monotonic
    ) -> None:
        self._seen: cachetools.TTLCache[str, bool] = cachetools.TTLCache(
            maxsize=max_entries, ttl=ttl_seconds, timer=timer
        )

    @classmethod
    def from_settings(cls, dedup: settings.DedupSettings) -> Deduplicator:
        return cls(max_entries=dedup.max_entries, ttl_seconds=dedup.ttl_seconds)

    def is_seen(self, key: str) -> bool:
        return key in self._seen

    def mark_seen(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._seen[key] = True

    def forget(self, key: str) -> None:
        """Take the occurrence again on its next delivery (its handling met an obstacle that may pass)."""
        self._seen.pop(key, None)

    def __len__(self) -> int:
        return len(self._seen)
