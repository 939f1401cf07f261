"""The bounded TTL set of seen occurrences.

Covers: firing and resolved notifications have separate keys; entries expire after the TTL (injected clock);
the oldest entries go first when full; a forgotten occurrence is taken again.
"""

from __future__ import annotations

import dataclasses

from responder.logic import deduplicating, normalizing
from responder.models import alerts, settings
from tests.unit import payloads


def _event(**kwargs: str) -> alerts.AlertEvent:
    payload = alerts.WebhookPayload.model_validate(payloads.payload(payloads.alert(**kwargs)))
    event = normalizing.normalize(payload.alerts[0], payload=payload, settings=settings.Settings())
    assert event is not None
    return event


def test_firing_and_resolved_have_separate_keys() -> None:
    firing = _event()
    resolved = dataclasses.replace(firing, status=alerts.AlertStatus.RESOLVED)
    assert deduplicating.occurrence_key(firing) == firing.occurrence_id
    assert deduplicating.occurrence_key(resolved) == firing.occurrence_id + ":resolved"


def test_entries_expire_after_the_ttl() -> None:
    now = [1000.0]
    dedup = deduplicating.Deduplicator(max_entries=10, ttl_seconds=60, timer=lambda: now[0])
    dedup.mark_seen(["a"])
    now[0] += 59
    assert dedup.is_seen("a")
    now[0] += 2
    assert not dedup.is_seen("a")


def test_the_oldest_entries_are_forgotten_when_full() -> None:
    dedup = deduplicating.Deduplicator(max_entries=2, ttl_seconds=60, timer=lambda: 0.0)
    dedup.mark_seen(["a", "b", "c"])
    assert len(dedup) == 2
    assert not dedup.is_seen("a")
    assert dedup.is_seen("b") and dedup.is_seen("c")


def test_a_forgotten_occurrence_is_taken_again_and_others_stay_seen() -> None:
    dedup = deduplicating.Deduplicator.from_settings(settings.DedupSettings(max_entries=10, ttl_seconds=60))
    dedup.mark_seen(["a", "b"])
    dedup.forget("a")
    dedup.forget("never-seen")
    assert not dedup.is_seen("a")
    assert dedup.is_seen("b")
