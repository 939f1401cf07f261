"""Helpers for notifier tests (test support): injected time and metric reads."""

from __future__ import annotations

import asyncio
import dataclasses

from responder import metrics as metrics_mod

__all__ = ["FakeTime", "count"]


@dataclasses.dataclass
class FakeTime:
    """A clock that moves only when slept on; sleeps are recorded, never waited (no timed tests)."""

    now: float = 1000.0
    sleeps: list[float] = dataclasses.field(default_factory=list)

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def count(metrics: metrics_mod.Metrics, notifier: str, result: str) -> float:
    """`oom_responder_notifications_total{notifier, result}`, 0 when never counted."""
    value = metrics.registry.get_sample_value(
        "oom_responder_notifications_total", {"notifier": notifier, "result": result}
    )
    return value or 0.0
