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


def test_an_absent_ledger_is_empty_and_readable() -> None:
    assert ledgers.read(None) == ledgers.read("") == ledgers.Ledger()


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        pytest.param("not json", "not a ledger: Invalid JSON", id="not-json"),
        pytest.param('{"a": 1}', "not a ledger: Input should be a valid array", id="an-object"),
        pytest.param("[1, 2]", "not a ledger: [0] Input should be an object", id="numbers"),
        pytest.param("[" * 1000 + "]" * 1000, "recursion limit exceeded", id="nested-1000-deep"),
        pytest.param("[" * 20000 + "]" * 20000, "bytes, over the 32768", id="over-the-size-bound"),
    ],
)
def test_a_damaged_ledger_is_unreadable_with_a_reason_and_never_raises(raw: str, why: str) -> None:
    ledger = ledgers.read(raw)
    assert ledger.entries == ()
    assert ledger.problem is not None
    assert ledger.problem.startswith(f"annotation {ledgers.ANNOTATION} ")
    assert why in ledger.problem
    assert ledgers.load(raw) == []


def test_one_damaged_entry_makes_the_whole_ledger_unreadable() -> None:
    # Skipping it instead would let anyone who can write the annotation reset the cap by writing junk.
    good = json.loads(ledgers.dump([make_entry(1)]))[0]
    ledger = ledgers.read(json.dumps([{"action": "explode"}, good]))
    assert ledger.entries == ()
    assert ledger.problem is not None and "[0.action]" in ledger.problem


def test_an_entry_whose_time_has_no_zone_is_refused() -> None:
    # A naive time cannot be compared with the clock: it used to raise TypeError in the guard.
    entry = json.loads(ledgers.dump([make_entry(1)]))[0]
    entry["at"] = "2026-01-02T03:04:05"
    ledger = ledgers.read(json.dumps([entry]))
    assert ledger.problem is not None and "[0.at]" in ledger.problem and "timezone" in ledger.problem


def test_a_silence_id_is_kept_on_its_entry_only() -> None:
    at = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)
    raise_entry = ledgers.LedgerEntry(
        action=settings.Action.RAISE_MEMORY, playbook="p", occurrence="o1", at=at, by="r"
    )
    other = raise_entry.model_copy(update={"occurrence": "o2"})
    updated = ledgers.with_silence([other, raise_entry], raise_entry, "s-1")
    assert updated is not None
    assert [e.silence for e in updated] == [None, "s-1"]
    assert ledgers.load(ledgers.dump(updated))[1].silence == "s-1"
    assert ledgers.with_silence(updated, raise_entry, "s-1") is None  # already there: nothing to write
    assert ledgers.with_silence([other], raise_entry, "s-1") is None  # pushed out of the bounded ledger
