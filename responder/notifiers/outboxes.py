"""A bounded outbox per notifier channel: pacing, digests, retries and drops. The delivery edge's scheduler.

`put()` never waits and never fails: a notification must not delay a mitigation. Behind it one worker task
sends what is waiting, at most `messages_per_second` messages (Slack allows about one per second and channel);
when more than `digest_after` notices are waiting at once (a storm) they go out as one digest. Slack's 429
`Retry-After` is honoured exactly; 5xx answers and timeouts are retried with capped exponential backoff; what
still fails is counted `failed`. When the outbox is full the oldest notice is dropped, counted `dropped` and
logged. Secrets never reach this module: transports raise `DeliveryError`s whose text is already safe to log.
It must not render messages (transports do) nor read settings files.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from responder import metrics as metrics_mod
from responder.models import notices

__all__ = ["DeliveryError", "Outbox", "Result", "Transport"]

logger = logging.getLogger(__name__)

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class Result(enum.StrEnum):
    """The `result` label of `oom_responder_notifications_total`, counted once per notice."""

    SENT = "sent"
    DIGESTED = "digested"
    FAILED = "failed"
    DROPPED = "dropped"


class DeliveryError(Exception):
    """A delivery failed. The message names the failure (HTTP status, Slack error code), never a secret."""

    def __init__(self, message: str, *, retriable: bool, retry_after_seconds: float | None = None) -> None:
        super().__init__(message)
        self.retriable = retriable
        """5xx, timeouts, dropped connections: worth another attempt."""
        self.retry_after_seconds = retry_after_seconds
        """Set for a 429: the receiver asked us to wait this long (Retry-After)."""


class Transport(Protocol):
    """Sends messages to one destination (a Slack channel, a webhook URL)."""

    @property
    def name(self) -> str:
        """The `notifier` label in metrics and logs (never a URL)."""
        ...

    async def deliver(self, batch: Sequence[notices.Notice], *, digest: bool) -> None:
        """Send one notice (`digest=False`, batch of one) or a digest of many; raise `DeliveryError`."""
        ...

    async def close(self) -> None: ...


class Outbox:
    """One worker sending one destination's notices in order, paced, digested in storms, retried, bounded."""

    def __init__(
        self,
        transport: Transport,
        *,
        metrics: metrics_mod.Metrics,
        max_size: int = 1000,
        messages_per_second: float = 1.0,
        digest_after: int = 5,
        max_attempts: int = 5,
        backoff_seconds: float = 1.0,
        max_backoff_seconds: float = 30.0,
        max_retry_after_seconds: float = 300.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.transport = transport
        self._metrics = metrics
        self._max_size = max_size
        self._interval_seconds = 1.0 / messages_per_second
        self._digest_after = digest_after
        self._max_attempts = max_attempts
        self._backoff_seconds = backoff_seconds
        self._max_backoff_seconds = max_backoff_seconds
        self._max_retry_after_seconds = max_retry_after_seconds
        self._clock = clock
        self._sleep = sleep
        self._waiting: collections.deque[notices.Notice] = collections.deque()
        self._wakeup = asyncio.Event()
        self._next_send_at: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._busy = False
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def name(self) -> str:
        return self.transport.name

    def __len__(self) -> int:
        """Notices waiting (not counting a batch being sent)."""
        return len(self._waiting)

    def put(self, notice: notices.Notice) -> None:
        """Queue a notice without waiting. When full, the oldest waiting notice is dropped and counted."""
        if len(self._waiting) >= self._max_size:
            dropped = self._waiting.popleft()
            self._count(Result.DROPPED, 1)
            logger.warning(
                "notification dropped: outbox full",
                extra={"notifier": self.name, "incident": dropped.incident, "kind": dropped.kind.value},
            )
        self._waiting.append(notice)
        self._idle.clear()
        self._wakeup.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"outbox:{self.name}")

    async def drain(self) -> None:
        """Wait until everything queued so far was sent (or failed); for shutdown and tests."""
        await self._idle.wait()

    async def close(self, timeout_seconds: float) -> None:
        """Send what is waiting within `timeout_seconds`, then stop; what is left is counted as dropped."""
        if self._task is not None:
            try:
                async with asyncio.timeout(timeout_seconds):
                    await self.drain()
            except TimeoutError:
                pass
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                # Our own cancellation of the worker; re-raise only if *we* are being cancelled.
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
            self._task = None
        if self._waiting:
            left = len(self._waiting)
            self._waiting.clear()
            self._count(Result.DROPPED, left)
            logger.warning("notifications dropped at shutdown", extra={"notifier": self.name, "count": left})
        await self.transport.close()

    def _count(self, result: Result, n: int) -> None:
        if n:
            self._metrics.notifications.labels(self.name, result.value).inc(n)

    def _take(self) -> tuple[list[notices.Notice], bool]:
        if len(self._waiting) > self._digest_after:
            batch = list(self._waiting)
            self._waiting.clear()
            return batch, True
        return [self._waiting.popleft()], False

    async def _run(self) -> None:
        while True:
            if not self._waiting:
                self._idle.set()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            await self._pace()
            batch, digest = self._take()
            await self._send(batch, digest=digest)

    async def _pace(self) -> None:
        # Slack allows about one message per second per channel and answers bursts with 429s.
        if self._next_send_at is not None:
            delay = self._next_send_at - self._clock()
            if delay > 0:
                await self._sleep(delay)

    async def _send(self, batch: list[notices.Notice], *, digest: bool) -> None:
        attempt = 0
        while True:
            self._next_send_at = self._clock() + self._interval_seconds
            try:
                await self.transport.deliver(batch, digest=digest)
            except DeliveryError as e:
                if e.retry_after_seconds is not None:
                    # A 429 is not the message's fault: wait as told and try again without using an attempt.
                    wait = min(max(e.retry_after_seconds, 0.0), self._max_retry_after_seconds)
                    logger.info(
                        "notifier rate-limited; waiting as told",
                        extra={"notifier": self.name, "retry_after_seconds": wait},
                    )
                    await self._sleep(wait)
                    continue
                attempt += 1
                if e.retriable and attempt < self._max_attempts:
                    wait = min(self._backoff_seconds * 2 ** (attempt - 1), self._max_backoff_seconds)
                    logger.info(
                        "notification failed; retrying",
                        extra={
                            "notifier": self.name,
                            "error": str(e),
                            "attempt": attempt,
                            "wait_seconds": wait,
                        },
                    )
                    await self._sleep(wait)
                    continue
                self._count(Result.FAILED, len(batch))
                logger.error(
                    "notification failed",
                    extra={
                        "notifier": self.name,
                        "error": str(e),
                        "attempts": attempt,
                        "incidents": [notice.incident for notice in batch[:10]],
                    },
                )
                return
            except asyncio.CancelledError:
                raise
            except Exception as e:
                # A transport bug must not kill the worker: later notices still deserve delivery.
                self._count(Result.FAILED, len(batch))
                logger.error(
                    "notification failed unexpectedly",
                    extra={"notifier": self.name, "error": type(e).__name__},
                )
                return
            self._count(Result.DIGESTED if digest else Result.SENT, len(batch))
            return
