"""Client-side rate limiting of Kubernetes API requests (QPS and burst, like client-go's).

An alert storm must not become an API-server storm: every request of the service's API client waits for a
token from one bucket holding up to `burst` tokens and refilling at `qps` per second. The arithmetic is that of
the Go x/time/rate limiter, which client-go's token-bucket limiter uses: a caller reserves the next token (the
bucket may go into debt) and sleeps until it is due, so callers are served in arrival order and none starves.

This module only paces requests; it never retries, never inspects answers and never drops a request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

__all__ = ["Throttle"]


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
        """Wait until this request may go out."""
        delay = self.reserve()
        if delay <= 0:
            return
        try:
            await self._sleep(delay)
        except asyncio.CancelledError:
            self._cancel()
            raise
