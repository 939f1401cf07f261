"""heap_dump's pure part: one dump per workload per cooldown, from the claim annotation.

Covers: no claim (due now), a claim within the cooldown (seconds to go), past it, a damaged claim (due, never
a block forever), a zero cooldown, and the claim PATCH under the resourceVersion precondition.
"""

from __future__ import annotations

import datetime
import json

from responder.logic.actions import heap_dump

NOW = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.UTC)


def claimed(at: datetime.datetime) -> dict[str, str]:
    return {heap_dump.CLAIM_ANNOTATION: json.dumps({"at": at.isoformat(), "by": "r1"})}


def test_a_workload_never_dumped_is_due() -> None:
    assert heap_dump.remaining_seconds({}, now=NOW, cooldown_seconds=3600) == 0


def test_a_claim_within_the_cooldown_says_how_long_to_go() -> None:
    annotations = claimed(NOW - datetime.timedelta(minutes=10))
    remaining = heap_dump.remaining_seconds(annotations, now=NOW, cooldown_seconds=3600)
    assert remaining == 3000
    assert heap_dump.cooldown_line(remaining, cooldown_seconds=3600) == (
        "no heap dump: one was taken on this workload less than 3600s ago (3000s to go; annotation "
        "oom-responder.io/heap-dump)"
    )


def test_a_claim_past_the_cooldown_or_a_zero_cooldown_is_due() -> None:
    assert (
        heap_dump.remaining_seconds(
            claimed(NOW - datetime.timedelta(hours=2)), now=NOW, cooldown_seconds=3600
        )
        == 0
    )
    assert heap_dump.remaining_seconds(claimed(NOW), now=NOW, cooldown_seconds=0) == 0


def test_a_damaged_claim_does_not_block_forever() -> None:
    for raw in ("not json", "{}", '{"at": "yesterday"}', "[]"):
        assert (
            heap_dump.remaining_seconds({heap_dump.CLAIM_ANNOTATION: raw}, now=NOW, cooldown_seconds=3600)
            == 0
        )


def test_the_claim_is_written_under_the_resource_version() -> None:
    body = heap_dump.claim_patch(
        resource_version="42", now=NOW, by="r1", pod="web-1", path="/tmp/h.hprof", occurrence="f@t"
    )
    assert body["metadata"]["resourceVersion"] == "42"
    claim = json.loads(body["metadata"]["annotations"][heap_dump.CLAIM_ANNOTATION])
    assert claim == {
        "at": "2026-12-01T12:00:00+00:00",
        "by": "r1",
        "pod": "web-1",
        "path": "/tmp/h.hprof",
        "occurrence": "f@t",
    }
