"""The keyed work queue.

Covers: per-key serialization in arrival order; parallelism across keys; all-or-nothing offers when full or
closed; a failing handler is logged and counted and the worker carries on; drain lets work finish within the
grace period and cancels (and returns) the rest; the queue-depth gauge.
"""

from __future__ import annotations

import asyncio
import datetime
import logging

import pytest
from prometheus_client import CollectorRegistry

from responder import metrics as metrics_mod
from responder.engine import queueing
from responder.models import alerts, settings, work


def _item(key: str, n: int) -> work.WorkItem:
    event = alerts.AlertEvent(
        kind=settings.AlertKind.OOM_KILLED,
        alertname="OOMKilled",
        status=alerts.AlertStatus.FIRING,
        fingerprint=f"fp{n}",
        starts_at=datetime.datetime(2024, 5, 1, tzinfo=datetime.UTC),
        namespace="shop",
        pod=f"pod-{n}",
        container="app",
        severity=None,
        labels={},
        annotations={},
        generator_url="",
        external_url="",
    )
    return work.WorkItem(event=event, playbook=None, received_at=event.starts_at, queue_key=key)


class Gate:
    """A handler that records what it sees and holds each item until released."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.finished: list[str] = []
        self.cancelled: list[str] = []
        self.release = asyncio.Event()
        self.changed = asyncio.Event()

    async def __call__(self, item: work.WorkItem) -> None:
        self.started.append(item.event.fingerprint)
        self.changed.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled.append(item.event.fingerprint)
            raise
        self.finished.append(item.event.fingerprint)

    async def wait_started(self, count: int) -> None:
        while len(self.started) < count:
            self.changed.clear()
            await self.changed.wait()


async def test_items_of_one_key_run_one_at_a_time_in_order() -> None:
    gate = Gate()
    queue = queueing.KeyedQueue(handler=gate, max_pending=10, workers=4)
    queue.start()
    queue.offer([_item("shop/api", 1), _item("shop/api", 2), _item("shop/api", 3)])
    await gate.wait_started(1)
    for _ in range(5):
        await asyncio.sleep(0)  # give idle workers every chance to (wrongly) pick up the same key
    assert gate.started == ["fp1"]
    gate.release.set()
    await queue.wait_idle()
    assert gate.finished == ["fp1", "fp2", "fp3"]
    await queue.drain(1)


async def test_different_keys_run_in_parallel() -> None:
    gate = Gate()
    queue = queueing.KeyedQueue(handler=gate, max_pending=10, workers=2)
    queue.start()
    queue.offer([_item("shop/api", 1), _item("shop/web", 2), _item("shop/db", 3)])
    await gate.wait_started(2)
    assert sorted(gate.started) == ["fp1", "fp2"]
    assert queue.pending == 3
    gate.release.set()
    await queue.wait_idle()
    assert sorted(gate.finished) == ["fp1", "fp2", "fp3"]
    await queue.drain(1)


async def test_an_offer_that_does_not_fit_queues_nothing() -> None:
    gate = Gate()
    registry = CollectorRegistry()
    queue = queueing.KeyedQueue(handler=gate, max_pending=3, workers=1, metrics=metrics_mod.Metrics(registry))
    queue.offer([_item("a", 1), _item("b", 2)])
    with pytest.raises(queueing.QueueFull):
        queue.offer([_item("c", 3), _item("d", 4)])
    assert [i.event.fingerprint for i in queue.items()] == ["fp1", "fp2"]
    assert registry.get_sample_value("oom_responder_queue_depth") == 2
    queue.offer([_item("c", 3)])
    assert queue.pending == 3
    await queue.drain(0.01)


async def test_a_closed_queue_refuses_offers() -> None:
    queue = queueing.KeyedQueue(handler=Gate(), max_pending=3, workers=1)
    queue.start()
    await queue.drain(1)
    with pytest.raises(queueing.QueueClosed):
        queue.offer([_item("a", 1)])
    assert queue.items() == []


async def test_a_failing_handler_is_logged_and_counted_and_the_worker_carries_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[str] = []

    async def handler(item: work.WorkItem) -> None:
        seen.append(item.event.fingerprint)
        if item.event.fingerprint == "fp1":
            raise RuntimeError("boom")

    queue = queueing.KeyedQueue(handler=handler, max_pending=10, workers=1)
    queue.start()
    with caplog.at_level(logging.ERROR):
        queue.offer([_item("a", 1), _item("a", 2)])
        await queue.wait_idle()
    assert seen == ["fp1", "fp2"]
    assert (queue.failures, queue.completed) == (1, 1)
    assert any(r.message == "work item failed" and r.exc_info for r in caplog.records)
    await queue.drain(1)


async def test_drain_lets_in_flight_and_waiting_work_finish_within_the_grace_period() -> None:
    gate = Gate()
    queue = queueing.KeyedQueue(handler=gate, max_pending=10, workers=1)
    queue.start()
    queue.offer([_item("a", 1), _item("a", 2)])
    await gate.wait_started(1)
    draining = asyncio.create_task(queue.drain(30))
    await asyncio.sleep(0)
    with pytest.raises(queueing.QueueClosed):
        queue.offer([_item("b", 3)])
    gate.release.set()
    assert await draining == []
    assert gate.finished == ["fp1", "fp2"]
    assert gate.cancelled == []


async def test_drain_cancels_what_is_left_after_the_grace_period(caplog: pytest.LogCaptureFixture) -> None:
    gate = Gate()
    queue = queueing.KeyedQueue(handler=gate, max_pending=10, workers=1)
    queue.start()
    queue.offer([_item("a", 1), _item("a", 2)])
    await gate.wait_started(1)
    with caplog.at_level(logging.WARNING):
        leftovers = await queue.drain(0.01)
    assert [i.event.fingerprint for i in leftovers] == ["fp1", "fp2"]
    assert gate.cancelled == ["fp1"]
    assert gate.finished == []
    assert queue.pending == 0
    assert sum(r.message == "work item cancelled at shutdown" for r in caplog.records) == 2
