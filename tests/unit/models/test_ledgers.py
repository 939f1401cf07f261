"""The workload ledger: round trip through the annotation, bounding, tolerance of damaged annotations."""

from __future__ import annotations

import datetime
import json

import pytest

from responder.models import decisions, ledgers, settings

NOW = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)


def make_entry(n: int) -> ledgers.LedgerEntry:
    return ledgers.LedgerEntry(
        action=settings.Action.RAISE_MEMORY,
        from_value="512Mi",
        to_value="614Mi",
        playbook="oom-raise-memory",
        occurrence=f"fp{n}@2026-01-02T03:00:00+00:00",
        at=NOW,
        by="responder-0",
    )


def test_round_trips_through_the_annotation_with_short_keys() -> None:
    raw = ledgers.dump([make_entry(1)])
    assert json.loads(raw)[0]["from"] == "512Mi"
    [entry] = ledgers.load(raw)
    assert entry == make_entry(1)
    assert entry.result is decisions.Outcome.DONE


def test_keeps_only_the_newest_entries() -> None:
    entries: list[ledgers.LedgerEntry] = []
    for n in range(ledgers.MAX_ENTRIES + 5):
        entries = ledgers.append(entries, make_entry(n))
    assert len(entries) == ledgers.MAX_ENTRIES
    assert entries[-1].occurrence.startswith(f"fp{ledgers.MAX_ENTRIES + 4}@")
    assert len(json.loads(ledgers.dump(entries))) == ledgers.MAX_ENTRIES


@pytest.mark.parametrize("raw", [None, "", "not json", '{"a": 1}', "[1, 2]"], ids=str)
def test_treats_a_missing_or_damaged_ledger_as_empty(raw: str | None) -> None:
    assert ledgers.load(raw) == []


def test_skips_damaged_entries_and_keeps_good_ones() -> None:
    good = json.loads(ledgers.dump([make_entry(1)]))[0]
    raw = json.dumps([{"action": "explode"}, good])
    assert [e.occurrence for e in ledgers.load(raw)] == [good["occurrence"]]
