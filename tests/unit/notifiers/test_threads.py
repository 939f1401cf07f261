"""The pure part of keeping Slack threads in the ledger (responder/kube/threads.py).

Aspects covered:
* the thread of an occurrence is found in a ledger, and only for that occurrence;
* setting a thread marks every entry of the occurrence and leaves the others untouched;
* nothing to write when the occurrence has no entry or already has a thread (the first thread wins);
* the thread survives the annotation's dump/load round trip.
"""

from __future__ import annotations

import datetime

from responder.kube import threads
from responder.models import ledgers, settings

AT = datetime.datetime(2024, 5, 14, 9, 30, tzinfo=datetime.UTC)


def _entry(
    occurrence: str, *, thread: str | None = None, action: settings.Action = settings.Action.SCALE_OUT
) -> ledgers.LedgerEntry:
    return ledgers.LedgerEntry(
        action=action, playbook="p", occurrence=occurrence, at=AT, by="replica-a", thread=thread
    )


def test_finds_the_thread_of_its_occurrence_only() -> None:
    entries = [_entry("a@1", thread="1.1"), _entry("b@1")]
    assert threads.find_thread(entries, "a@1") == "1.1"
    assert threads.find_thread(entries, "b@1") is None
    assert threads.find_thread([], "a@1") is None


def test_sets_the_thread_on_every_entry_of_the_occurrence() -> None:
    entries = [
        _entry("a@1"),
        _entry("b@1"),
        _entry("a@1", action=settings.Action.CAPTURE_DIAGNOSTICS),
    ]
    updated = threads.with_thread(entries, "a@1", "1700000000.000100")
    assert updated is not None
    assert [entry.thread for entry in updated] == ["1700000000.000100", None, "1700000000.000100"]
    assert [entry.occurrence for entry in updated] == ["a@1", "b@1", "a@1"]
    assert entries[0].thread is None, "the input is not modified"


def test_nothing_to_write_without_an_entry_for_the_occurrence() -> None:
    assert threads.with_thread([_entry("b@1")], "a@1", "1.1") is None
    assert threads.with_thread([], "a@1", "1.1") is None


def test_the_first_thread_kept_wins() -> None:
    assert threads.with_thread([_entry("a@1", thread="1.1")], "a@1", "2.2") is None


def test_thread_survives_the_annotation_round_trip() -> None:
    updated = threads.with_thread([_entry("a@1")], "a@1", "1700000000.000100")
    assert updated is not None
    raw = ledgers.dump(updated)
    assert '"thread":"1700000000.000100"' in raw
    assert threads.find_thread(ledgers.load(raw), "a@1") == "1700000000.000100"
