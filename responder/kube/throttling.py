"""Client-side rate limiting of Kubernetes API requests (QPS and burst, like client-go's).

An alert storm must not become an API-server storm: every request of the service's API client waits for a
token from one bucket holding up to `burst` tokens and refilling at `qps` per second. The arithmetic is that of
the Go x/time/rate limiter, which client-go's token-bucket limiter uses: a caller reserves the next token (the
bucket may go into debt) and sleeps until it is due, so callers are served in arrival order and none starves.

Requests made in the background (`in_background()`: the Event that reports a verified rollout, written by
the verification's own task after its verdict) yield to the others: one goes out only when no other request
is waiting and a token is free. In a storm the mitigations' own requests use the budget first.

This module only paces requests; it never retries, never inspects answers and never drops a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
from collections.abc import Awaitable, Callable, Iterator

__all__ = ["Throttle", "in_background"]

_BACKGROUND: contextvars.ContextVar[bool] = contextvars.ContextVar("oom_responder_background", default=False)


@contextlib.contextmanager
def in_background() -> Iterator[None]:
    """Requests made inside wait until no other request of this client waits. Only for work that holds up
    nothing else while it waits (a task of its own, not a queue worker)."""
    token = _BACKGROUND.set(True)
    try:
        yield
    finally:
        _BACKGROUND.reset(token)


class Throttle:
    """A token bucket: `burst` requests at once, then `qps` per second. Clock and sleep are injectable."""

    def __init__(
        self,
        *,
        qps: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if qps <= 0:
            raise ValueError(f"qps must be > 0, got {qps}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst}")
        self.qps = float(qps)
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._updated = clock()
        self._waiting = 0
        """Requests (not in the background) sleeping until their token is due."""

    def _advance(self, now: float) -> None:
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.qps)
        self._updated = max(now, self._updated)

    def reserve(self) -> float:
        """Take the next token now; returns how many seconds until it is due (0 when one is available)."""
        self._advance(self._clock())
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.qps

    def _cancel(self) -> None:
        # A request that never went out gives its token back, so cancellations do not slow the others down.
        self._advance(self._clock())
        self._tokens = min(float(self.burst), self._tokens + 1.0)

    async def acquire(self) -> None:
        """Wait until this request may go out (after every other waiting one, inside `in_background()`)."""
        if _BACKGROUND.get():
            await self._acquire_in_background()
            return
        delay = self.reserve()
        if delay <= 0:
            return
        self._waiting += 1
        try:
            await self._sleep(delay)
        except asyncio.CancelledError:
            self._cancel()
            raise
        finally:
            self._waiting -= 1

    async def _acquire_in_background(self) -> None:
        # Nothing is reserved while waiting: a token is taken only when it is free and nobody else waits.
        while True:
            self._advance(self._clock())
            if self._waiting == 0 and self._tokens >= 1.0:
                self._tokens -= 1.0
                return
            await self._sleep(max(1.0 - self._tokens, 1.0) / self.qps)
