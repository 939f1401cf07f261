"""The bounded TTL set of seen occurrences.

Covers: firing and resolved notifications have separate keys; entries expire after the TTL (injected clock) and
are then dropped, with everything marked before them; the oldest entries go first when full; marking a key
again renews it and moves it behind the others; a forgotten occurrence is taken again; the answers stay right
over many more insertions and deletions than the cache holds (the dict is rebuilt along the way).
"""

from __future__ import annotations

import dataclasses
import random

import pytest

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


def test_expired_entries_are_dropped_with_everything_marked_before_them() -> None:
    now = [0.0]
    dedup = deduplicating.Deduplicator(max_entries=10, ttl_seconds=60, timer=lambda: now[0])
    dedup.mark_seen(["a", "b"])
    now[0] = 30
    dedup.mark_seen(["c"])
    now[0] = 60
    assert len(dedup) == 3
    assert not dedup.is_seen("b")
    assert len(dedup) == 1
    assert dedup.is_seen("c")
    now[0] = 100
    dedup.mark_seen(["d"])
    assert len(dedup) == 1
    assert dedup.is_seen("d") and not dedup.is_seen("c")


def test_marking_a_key_again_renews_it_and_puts_it_behind_the_others() -> None:
    now = [0.0]
    dedup = deduplicating.Deduplicator(max_entries=3, ttl_seconds=60, timer=lambda: now[0])
    dedup.mark_seen(["a", "b", "c"])
    now[0] = 50
    dedup.mark_seen(["a"])
    dedup.mark_seen(["d"])
    assert not dedup.is_seen("b")
    assert dedup.is_seen("a") and dedup.is_seen("c") and dedup.is_seen("d")
    now[0] = 70
    assert dedup.is_seen("a") and dedup.is_seen("d")
    assert not dedup.is_seen("c")
    assert len(dedup) == 2


def test_answers_stay_right_over_many_more_keys_than_it_holds() -> None:
    # Against a plainly written model of the same rules, over enough deletions to rebuild the dict many times.
    rng = random.Random(7)
    now = [0.0]
    dedup = deduplicating.Deduplicator(max_entries=300, ttl_seconds=50, timer=lambda: now[0])
    model: dict[str, float] = {}
    for _ in range(30_000):
        now[0] += rng.choice((0.0, 0.01, 0.1))
        key = f"k{rng.randrange(2_000)}"
        operation = rng.random()
        if operation < 0.5:
            assert dedup.is_seen(key) == (key in model and now[0] < model[key])
        elif operation < 0.9:
            dedup.mark_seen([key])
            model.pop(key, None)
            model[key] = now[0] + 50
            model = {k: e for k, e in model.items() if e > now[0]}
            while len(model) > 300:
                del model[next(iter(model))]
        else:
            dedup.forget(key)
            model.pop(key, None)
    dedup.mark_seen([])
    model = {k: e for k, e in model.items() if e > now[0]}
    assert len(dedup) == len(model) > 0
    assert all(dedup.is_seen(key) for key in model)


def test_sizes_and_ages_must_be_positive() -> None:
    with pytest.raises(ValueError, match="must be positive"):
        deduplicating.Deduplicator(max_entries=0, ttl_seconds=60)
