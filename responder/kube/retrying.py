"""Retrying Kubernetes API calls that failed for a passing reason.

Stage: kube edge. 429 (load shedding), 5xx, timeouts and dropped connections are retried with exponential
backoff and full jitter, honouring the API server's Retry-After; 401/403/404/409/422 and an eviction refused by
a PodDisruptionBudget are not (retrying cannot change their answer; a 409 is re-planned by the engine, not
retried blindly). It knows nothing about what the call does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import tenacity

from responder.kube import errors

__all__ = ["MAX_RETRY_AFTER_SECONDS", "retrying"]

T = TypeVar("T")

MAX_RETRY_AFTER_SECONDS = 30.0
"""A Retry-After longer than this is capped: the alert repeats anyway, and a worker must not sleep for long."""


def _is_retriable(exc: BaseException) -> bool:
    return isinstance(exc, errors.KubeError) and exc.retriable


class _WaitRetryAfterOrJitter(tenacity.wait.wait_base):
    def __init__(self, *, initial_seconds: float, max_seconds: float) -> None:
        self._jitter = tenacity.wait_random_exponential(multiplier=initial_seconds, max=max_seconds)

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        if isinstance(exc, errors.KubeError) and exc.retry_after_seconds is not None:
            return min(exc.retry_after_seconds, MAX_RETRY_AFTER_SECONDS)
        return float(self._jitter(retry_state))


async def retrying(
    call: Callable[[], Awaitable[T]],
    *,
    max_attempts: int,
    initial_seconds: float = 0.2,
    max_seconds: float = 10.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """Await `call()` until it succeeds, fails for good, or `max_attempts` are used (the last error is raised)."""
    retryer = tenacity.AsyncRetrying(
        retry=tenacity.retry_if_exception(_is_retriable),
        stop=tenacity.stop_after_attempt(max_attempts),
        wait=_WaitRetryAfterOrJitter(initial_seconds=initial_seconds, max_seconds=max_seconds),
        sleep=sleep,
        reraise=True,
    )
    result: T = await retryer(call)
    return result
