"""Queueing: a bounded work queue, serialized per key and parallel across keys.

The webhook offers the work items of one request all at once; either every item is queued or none is, so a
503 means nothing of that request was taken and Alertmanager's retry of the whole group loses nothing.
Items with the same key (one workload) are handled one at a time in arrival order; different keys run in
parallel on a fixed number of workers. The queue must not decide anything about the alerts it carries.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from responder import metrics as metrics_mod
from responder.models import work

__all__ = ["Handler", "KeyedQueue", "QueueClosed", "QueueFull", "QueueRejected"]

logger = logging.getLogger(__name__)

Handler = Callable[[work.WorkItem], Awaitable[None]]

_IN_A_ROW = 32
"""Items a worker takes one after another without suspending before it lets the event loop run."""


class QueueRejected(Exception):
    """Nothing of the offer was queued."""


class QueueFull(QueueRejected):
    def __init__(self, *, pending: int, offered: int, max_pending: int) -> None:
        super().__init__(f"queue full: {pending} of {max_pending} alerts pending, {offered} more offered")
        self.pending = pending
        self.offered = offered
        self.max_pending = max_pending


class QueueClosed(QueueRejected):
    def __init__(self) -> None:
        super().__init__("shutting down: no new work is accepted")


class KeyedQueue:
    """Bounded per-key FIFO queues worked by `workers` tasks; at most one item per key is in flight."""

    def __init__(
        self,
        *,
        handler: Handler,
        max_pending: int,
        workers: int,
        metrics: metrics_mod.Metrics | None = None,
    ) -> None:
        if max_pending <= 0 or workers <= 0:
            raise ValueError("max_pending and workers must be positive")
        self._handler = handler
        self._max_pending = max_pending
        self._workers_count = workers
        self._metrics = metrics
        self._waiting: dict[str, collections.deque[work.WorkItem]] = {}
        self._ready: collections.deque[str] = collections.deque()
        """Keys with waiting items and nothing in flight, in the order they became ready."""
        self._idle_workers: collections.deque[asyncio.Future[None]] = collections.deque()
        """One future per worker waiting for a ready key; a key made ready wakes the first."""
        self._in_flight: dict[str, work.WorkItem] = {}
        self._pending = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        if metrics is not None:
            # Read when scraped: setting a gauge (a lock) for every item queued and finished cost more than
            # the queue's own work on the ingest path.
            metrics.queue_depth.set_function(lambda: self._pending)
        self.failures = 0
        """Items whose handler raised (logged; the worker carries on)."""
        self.completed = 0
        """Items whose handler returned."""

    @property
    def max_pending(self) -> int:
        return self._max_pending

    @property
    def pending(self) -> int:
        """Items waiting or in flight."""
        return self._pending

    @property
    def closed(self) -> bool:
        return self._closed

    def items(self) -> list[work.WorkItem]:
        """Every item waiting or in flight (in flight first)."""
        result = list(self._in_flight.values())
        for queue in self._waiting.values():
            result.extend(queue)
        return result

    def start(self) -> None:
        """Start the workers; call once, from inside the running event loop."""
        if self._tasks:
            raise RuntimeError("the queue is already started")
        self._tasks = [
            asyncio.create_task(self._work(), name=f"queue-worker-{n}") for n in range(self._workers_count)
        ]

    def offer(self, items: Sequence[work.WorkItem]) -> None:
        """Queue every item, or none of them (raising QueueFull or QueueClosed)."""
        if self._closed:
            raise QueueClosed()
        if self._pending + len(items) > self._max_pending:
            raise QueueFull(pending=self._pending, offered=len(items), max_pending=self._max_pending)
        if not items:
            return
        for item in items:
            queue = self._waiting.get(item.queue_key)
            if queue is None:
                queue = self._waiting[item.queue_key] = collections.deque()
                if item.queue_key not in self._in_flight:
                    self._make_ready(item.queue_key)
            queue.append(item)
        self._set_pending(self._pending + len(items))

    def _make_ready(self, key: str) -> None:
        self._ready.append(key)
        # Wake one idle worker. A worker that finishes an item first may take the key instead; the woken
        # one then finds nothing and waits again, and no key is ever left without a worker to see it, since
        # a busy worker looks at the ready keys before it waits.
        while self._idle_workers:
            waiter = self._idle_workers.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _set_pending(self, value: int) -> None:
        self._pending = value
        if value == 0:
            self._idle.set()
        else:
            self._idle.clear()

    def _take(self, key: str) -> work.WorkItem:
        queue = self._waiting[key]
        item = queue.popleft()
        if not queue:
            del self._waiting[key]
        self._in_flight[key] = item
        return item

    def _finish(self, item: work.WorkItem) -> None:
        key = item.queue_key
        del self._in_flight[key]
        if key in self._waiting:
            self._make_ready(key)
        self._pending -= 1
        if not self._pending:
            self._idle.set()

    async def _next_key(self) -> str:
        ready = self._ready
        while not ready:
            waiter = asyncio.get_running_loop().create_future()
            self._idle_workers.append(waiter)
            try:
                await waiter
            finally:
                # Cancelled (drain), or woken: a woken waiter was taken off the list already.
                if not waiter.done() or waiter.cancelled():
                    with contextlib.suppress(ValueError):
                        self._idle_workers.remove(waiter)
        return ready.popleft()

    async def _work(self) -> None:
        ready = self._ready
        in_a_row = 0
        while True:
            if not ready:
                in_a_row = 0
                key = await self._next_key()
            elif in_a_row < _IN_A_ROW:
                # A key already waiting is taken without suspending (what asyncio.Queue.get does too).
                in_a_row += 1
                key = ready.popleft()
            else:
                # A handler that never waits (planning from labels) would otherwise work off a whole backlog
                # in one go while no webhook is answered: let the event loop run between batches.
                in_a_row = 0
                await asyncio.sleep(0)
                continue
            item = self._take(key)
            try:
                await self._handler(item)
                self.completed += 1
            except asyncio.CancelledError:
                raise
            except Exception:
                self.failures += 1
                if self._metrics is not None:
                    self._metrics.work_failures.inc()
                logger.exception(
                    "work item failed",
                    extra={"occurrence_id": item.event.occurrence_id, "queue_key": item.queue_key},
                )
            finally:
                self._finish(item)

    async def wait_idle(self) -> None:
        """Wait until nothing is waiting or in flight."""
        await self._idle.wait()

    async def drain(self, timeout_seconds: float) -> list[work.WorkItem]:
        """Stop accepting, let waiting and in-flight items finish within the grace period, cancel the rest.

        Returns the items that were cancelled or never started (each is logged). Safe to call twice.
        """
        self._closed = True
        if self._tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), timeout=timeout_seconds)
        leftovers = self.items()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                # The worker was cancelled by us; if drain() itself is being cancelled, re-raise.
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
        self._tasks = []
        for item in leftovers:
            logger.warning(
                "work item cancelled at shutdown",
                extra={
                    "occurrence_id": item.event.occurrence_id,
                    "queue_key": item.queue_key,
                    "alertname": item.event.alertname,
                },
            )
        self._waiting.clear()
        self._ready.clear()
        self._idle_workers.clear()
        self._in_flight.clear()
        self._set_pending(0)
        return leftovers
