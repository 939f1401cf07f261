"""Investigation stage: make a memory series fit to analyse, and split it into container lifetimes.

Part of the memory-pattern classifier (`responder.logic.analysing` is its entry point). Drops unreadable samples
(NaN, infinite, negative), cuts the series at known restarts and at drops of more than half (Coroot's leak check:
a restart the restart counter did not show, e.g. a replaced pod of the same name), tells whether the time between
restarts shrinks, and measures the scrape-to-scrape noise. It names no pattern: that is
`responder.logic.classifying`'s job. No I/O, no clock.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from responder.models.analyses import Lifetime, LifetimeTrend

Array = npt.NDArray[np.float64]

MIN_SAMPLES = 30
"""Fewer usable samples than this (half an hour at the default step) say nothing about a trend."""

MIN_SPAN_SECONDS = 2 * 3600.0
"""A shorter window cannot tell a start-up ramp from a leak."""

MIN_COVERAGE = 0.2
"""Below this share of expected scrapes present, the series is mostly gaps."""

RESTART_DROP_RATIO = 0.5
"""A fall to less than this share of the previous sample is a restart (Coroot's > 50 % drop)."""

MIN_LIFETIME_SECONDS = 3600.0
"""Lifetimes shorter than this are counted but not fitted."""

SHRINK_RATIO = 0.75
"""Last complete lifetime shorter than this share of the first: lifetimes are shrinking."""


def clean(timestamps: Sequence[float], values: Sequence[float]) -> tuple[Array, Array]:
    t = np.asarray(timestamps, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    if t.shape != y.shape or t.ndim != 1:
        return np.empty(0), np.empty(0)
    ok = np.isfinite(t) & np.isfinite(y) & (y >= 0)
    t, y = t[ok], y[ok]
    if t.size > 1 and not bool(np.all(np.diff(t) > 0)):
        t, idx = np.unique(t, return_index=True)
        y = y[idx]
    return t, y


def median3(y: Array) -> Array:
    """The median of each 3-sample window (without sorting: a glitch in one scrape disappears)."""
    a, b, c = y[:-2], y[1:-1], y[2:]
    return np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))


def robust_peak(y: Array) -> float:
    # A single corrupt sample must not set the limit.
    return float(median3(y).max()) if y.size >= 3 else float(y.max())


def lifetime_bounds(t: Array, y: Array, restarts: Sequence[float]) -> list[tuple[int, int]]:
    cuts: set[int] = set()
    prev = y[:-1]
    dropped = np.flatnonzero((y[1:] < RESTART_DROP_RATIO * prev) & (prev > 0)) + 1
    cuts.update(int(i) for i in dropped)
    if restarts:
        r = np.asarray(restarts, dtype=np.float64)
        r = r[np.isfinite(r) & (r > t[0]) & (r <= t[-1])]
        cuts.update(int(i) for i in np.searchsorted(t, r, side="left"))
    edges = [0, *sorted(c for c in cuts if 0 < c < t.size), t.size]
    return [(a, b) for a, b in itertools.pairwise(edges) if b > a]


def lifetime_trend(lifetimes: Sequence[Lifetime]) -> LifetimeTrend:
    # The first lifetime began before the window: only the ones between two restarts have a known length.
    complete = [lt.duration_seconds for lt in lifetimes[1:] if lt.ended_by_restart]
    if len(complete) < 2:
        return LifetimeTrend.UNKNOWN
    first, last = complete[0], complete[-1]
    if len(complete) >= 3 and last < SHRINK_RATIO * first and complete[-1] <= min(complete[:-1]):
        return LifetimeTrend.SHRINKING
    if last > first / SHRINK_RATIO:
        return LifetimeTrend.GROWING
    return LifetimeTrend.STEADY


def measure_noise(y: Array, bounds: list[tuple[int, int]]) -> float:
    diffs = [np.diff(y[a:b]) for a, b in bounds if b - a > 2]
    if not diffs:
        return 0.0
    d = np.concatenate(diffs)
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / math.sqrt(2))
