"""Which workloads this process wrote lately (`responder.engine.recent_writes.RecentWrites`).

Covers: a read stays current until a write on its own workload finishes (writes on others do not matter);
once the oldest writes are forgotten, every read taken before them counts as stale (a re-read, never a
wrong trust).
"""

from __future__ import annotations

from responder.engine import recent_writes


def test_a_read_stays_current_until_a_write_on_its_workload_finishes() -> None:
    writes = recent_writes.RecentWrites()
    before = writes.seq

    writes.wrote("shop/Deployment/api")

    assert writes.unwritten_since("shop/Deployment/web", before)
    assert not writes.unwritten_since("shop/Deployment/api", before)
    assert writes.unwritten_since("shop/Deployment/api", writes.seq)


def test_forgotten_writes_make_every_older_read_stale() -> None:
    writes = recent_writes.RecentWrites()
    before = writes.seq
    writes.wrote("shop/Deployment/web")
    for index in range(recent_writes._REMEMBERED):
        writes.wrote(f"shop/Deployment/other-{index}")

    # web's write was forgotten: whether it came after `before` is no longer known, so the read is not trusted.
    assert not writes.unwritten_since("shop/Deployment/never-written", before)
    assert writes.unwritten_since("shop/Deployment/never-written", writes.seq)
