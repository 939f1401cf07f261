"""Memory history and its analysis (runbook RB-010 Step 3): data only.

The reader at the edge (`responder.prometheus`) fills a `WorkloadHistory`; the pure classifier
(`responder.logic.analysing`) turns it into an `Analysis`. Nothing here reads Prometheus or the clock.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence

__all__ = ["Analysis", "ContainerSeries", "Lifetime", "LifetimeTrend", "Pattern", "WorkloadHistory"]


class Pattern(enum.StrEnum):
    """The memory patterns of RB-010 Step 3, plus the two answers that are not a leak."""

    LINEAR_LEAK = "linear_leak"
    """Steady growth within each container lifetime: the classic leak."""
    SAWTOOTH_LEAK = "sawtooth_leak"
    """Garbage collection drops memory periodically, but each trough is higher than the last."""
    ACCELERATING = "accelerating"
    """The leak rate itself increases, or the time between restarts shrinks."""
    SPIKE = "spike"
    """A sudden jump within minutes: one operation, not a leak."""
    STABLE = "stable"
    """No growth that would reach the limit: plateaus, daily cycles, level shifts after a deploy."""
    INSUFFICIENT_DATA = "insufficient_data"
    """Too little (or unreadable) history to say; the reason says why."""

    @property
    def is_leak(self) -> bool:
        return self in _LEAKS


_LEAKS = frozenset({Pattern.LINEAR_LEAK, Pattern.SAWTOOTH_LEAK, Pattern.ACCELERATING})


class LifetimeTrend(enum.StrEnum):
    """How the time between restarts evolves over the window."""

    SHRINKING = "shrinking"
    STEADY = "steady"
    GROWING = "growing"
    UNKNOWN = "unknown"
    """Fewer than two complete lifetimes in the window."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class ContainerSeries:
    """One container's working set over time (one pod, possibly several container restarts).

    `timestamps` are Unix seconds, ascending; `values` are bytes and may hold NaN where a scrape was missing.
    `restarts` are the moments the container is known to have restarted (restart counter increased), Unix
    seconds; drops in the data itself are found by the classifier too.
    """

    pod: str
    container: str
    timestamps: Sequence[float]
    values: Sequence[float]
    restarts: Sequence[float] = ()
    limit_bytes: int | None = None
    """The container's memory limit as last seen in the window, None when it has none or it is unknown."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class WorkloadHistory:
    """Everything read for one workload: one series per container of each of its pods, replaced ones too."""

    series: Sequence[ContainerSeries]
    step_seconds: float = 60.0
    limit_bytes: int | None = None
    """The limit to measure against (the alert's or the workload's current one); falls back to the series'."""
    problem: str | None = None
    """Why the history could not be read (Prometheus absent, slow, 5xx…): the analysis is then insufficient."""
    rss_share: float | None = None
    """RSS ÷ working set at the latest sample (the highest over the containers); None when RSS is unknown."""
    notes: tuple[str, ...] = ()
    """What could not be read but did not stop the analysis (e.g. no restart counter)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Lifetime:
    """One container lifetime: from a (re)start to the next restart or the end of the window."""

    start: float
    end: float
    ended_by_restart: bool
    peak_bytes: float

    @property
    def duration_seconds(self) -> float:
        return self.end - self.start


@dataclasses.dataclass(frozen=True, kw_only=True)
class Analysis:
    """What the history says, with every figure a human (or a playbook) needs, and the reason in words."""

    pattern: Pattern
    reason: str
    """One or two sentences: why this pattern, with the figures that decided it."""
    pod: str | None = None
    """The pod whose series the figures come from."""
    container: str | None = None
    slope_bytes_per_hour: float | None = None
    slope_percent_of_limit_per_hour: float | None = None
    time_to_oom_seconds: float | None = None
    """From the end of the window until the current limit is reached at the measured rate; None if never."""
    peak_bytes: float | None = None
    last_bytes: float | None = None
    limit_bytes: int | None = None
    recommended_limit_bytes: int | None = None
    recommendation: str | None = None
    """How the recommended limit was derived, in words."""
    lifetimes: tuple[Lifetime, ...] = ()
    lifetime_trend: LifetimeTrend = LifetimeTrend.UNKNOWN
    samples: int = 0
    window_seconds: float = 0.0
    sparkline: tuple[float, ...] = ()
    """The window downsampled to a few dozen points (bytes), for a compact rendering next to the limit."""
    rss_share: float | None = None
    """RSS ÷ working set at the end of the window: low means page cache, which the kernel can reclaim."""
    notes: tuple[str, ...] = ()
