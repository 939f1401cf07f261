"""Investigation stage: the robust statistics fitted to each container lifetime of a memory series.

Part of the memory-pattern classifier (`responder.logic.analysing` is its entry point). Per lifetime, on
10-minute bin means: Theil-Sen slope (robust to outliers and scrape gaps), fit quality (R² of that line), tail
slope (the last 30 %), the slopes of 3-hour stretches (acceleration), and, when a lifetime covers most of a day,
the trend left after removing a daily cycle (24 h and 12 h harmonics). On the raw points: garbage-collection drops
and the lines through the troughs after them and the peaks before them (sawtooth). It only measures; reading the
figures as a pattern is `responder.logic.classifying`'s job. No I/O, no clock.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from functools import cache

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]

BIN_SECONDS = 600.0
"""Width of the bins whose means are fitted (at most `MAX_BINS` per lifetime: wider for long windows)."""

MAX_BINS = 200

WARMUP_SECONDS = 20 * 60.0
"""A lifetime's first minutes are its start-up ramp: not a spike."""

CHUNK_SECONDS = 3 * 3600.0
"""Stretches whose slopes show how the leak rate evolves (across lifetimes too)."""

DAILY_MIN_SPAN_SECONDS = 20 * 3600.0
"""Lifetimes at least this long are checked for a daily cycle."""

SAWTOOTH_MIN_TEETH = 4
"""Garbage-collection drops per fitted lifetime from which a series is a sawtooth."""

SAWTOOTH_MIN_DROP = 0.015
"""A drop of at least this share of the level (and `SAWTOOTH_NOISE_FACTOR` × the noise) is a collection."""

SAWTOOTH_NOISE_FACTOR = 3.0
"""Noise alone makes about two such drops a day: far fewer than `SAWTOOTH_MIN_RATE`."""

SAWTOOTH_MIN_RATE = 0.5
"""Collections per hour from which a series is a sawtooth (a garbage collector runs every few minutes)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Fit:
    start: float
    end: float
    slope: float
    intercept: float
    r2: float
    tail_slope: float
    deseasoned_slope: float | None
    level: float
    teeth: int
    trough_slope: float | None
    trough_r2: float | None
    peak_slope: float | None
    peak_line_end: float | None
    chunks: tuple[tuple[float, float], ...]
    """(middle time, slope) of consecutive stretches of `CHUNK_SECONDS`, the start-up ramp left out."""
    trough_chunks: tuple[tuple[float, float], ...]
    """The same for the troughs of a sawtooth."""

    @property
    def duration(self) -> float:
        return self.end - self.start


@cache
def pairs(n: int) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    i, j = np.triu_indices(n, k=1)
    return i, j


def theil_sen(x: Array, y: Array) -> tuple[float, float]:
    if x.size < 2:
        return 0.0, float(y[0]) if y.size else 0.0
    i, j = pairs(int(x.size))
    slope = float(np.median((y[j] - y[i]) / (x[j] - x[i])))
    return slope, float(np.median(y - slope * x))


def weighted_median(values: Sequence[float], weights: npt.NDArray[np.float64]) -> float:
    v = np.asarray(values, dtype=np.float64)
    order = np.argsort(v)
    cum = np.cumsum(weights[order])
    return float(v[order][int(np.searchsorted(cum, cum[-1] / 2))])


def _bins(x: Array, y: Array) -> tuple[Array, Array]:
    """Means of the samples in equal time bins (empty bins skipped: gaps do not count)."""
    span = float(x[-1] - x[0])
    width = max(BIN_SECONDS, span / MAX_BINS)
    idx = ((x - x[0]) // width).astype(np.int64)
    counts = np.bincount(idx)
    keep = counts > 0
    xb = np.bincount(idx, weights=x)[keep] / counts[keep]
    yb = np.bincount(idx, weights=y)[keep] / counts[keep]
    return xb, yb


def fit_lifetime(t: Array, y: Array) -> Fit:
    x = t - t[0]
    xb, yb = _bins(x, y)
    slope, intercept = theil_sen(xb, yb)
    resid = yb - (intercept + slope * xb)
    ss_tot = float(np.sum((yb - yb.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid**2)) / ss_tot if ss_tot > 0 else 0.0
    span = float(x[-1])
    tail = xb >= 0.7 * span
    tail_slope = theil_sen(xb[tail], yb[tail])[0] if np.count_nonzero(tail) >= 3 else slope
    chunks = []
    first = WARMUP_SECONDS
    while first + CHUNK_SECONDS <= span + BIN_SECONDS:
        sel = (xb >= first) & (xb < first + CHUNK_SECONDS)
        if np.count_nonzero(sel) >= 6:
            chunks.append((float(t[0]) + first + CHUNK_SECONDS / 2, theil_sen(xb[sel], yb[sel])[0]))
        first += CHUNK_SECONDS
    deseasoned = _deseasoned_slope(xb, yb) if span >= DAILY_MIN_SPAN_SECONDS else None
    level = float(np.median(y))
    teeth, trough_slope, trough_r2, peak_slope, peak_end, trough_chunks = _sawtooth(x, y)
    return Fit(
        start=float(t[0]),
        end=float(t[-1]),
        slope=slope,
        intercept=intercept,
        r2=r2,
        tail_slope=tail_slope,
        deseasoned_slope=deseasoned,
        level=level,
        teeth=teeth,
        trough_slope=trough_slope,
        trough_r2=trough_r2,
        peak_slope=peak_slope,
        peak_line_end=peak_end,
        chunks=tuple(chunks),
        trough_chunks=tuple((float(t[0]) + m, v) for m, v in trough_chunks),
    )


def _deseasoned_slope(xb: Array, yb: Array) -> float:
    """The linear term of a fit that also has a daily cycle (24 h and 12 h harmonics)."""
    w = 2 * math.pi * xb / 86400.0
    design = np.column_stack([np.ones_like(xb), xb, np.sin(w), np.cos(w), np.sin(2 * w), np.cos(2 * w)])
    coef, *_ = np.linalg.lstsq(design, yb, rcond=None)
    return float(coef[1])


def _sawtooth(
    x: Array, y: Array
) -> tuple[int, float | None, float | None, float | None, float | None, tuple[tuple[float, float], ...]]:
    """Collections (drops), the lines through the troughs after them and the peaks before them.

    A drop is measured between the means of two samples before and two after, so that one noisy or glitched
    scrape is not a collection. Returns the number of drops, the trough slope and its R², the peak slope,
    the peak line's value at the end, and the trough slopes of 3-hour stretches (relative times).
    """
    none: tuple[tuple[float, float], ...] = ()
    if y.size < 8:
        return 0, None, None, None, None, none
    pair = (y[:-1] + y[1:]) / 2
    d = pair[2:] - pair[:-2]  # d[j]: mean of y[j+2], y[j+3] minus mean of y[j], y[j+1]
    local = pair[:-2]
    # Working-set noise grows with the level: measure it relative to the level, so that a leak's noisier
    # end does not pass for collections.
    rel = np.diff(y) / np.maximum(y[:-1], 1.0)
    rel_noise = float(1.4826 * np.median(np.abs(rel - np.median(rel))) / math.sqrt(2))
    big = d < -local * max(SAWTOOTH_MIN_DROP, SAWTOOTH_NOISE_FACTOR * rel_noise)
    starts = np.flatnonzero(big & ~np.concatenate(([False], big[:-1]))) + 1
    if starts.size < SAWTOOTH_MIN_TEETH:
        return int(starts.size), None, None, None, None, none
    last = y.size - 1
    peak_i = np.minimum(starts, last)
    trough_i = np.minimum(starts + 1, last)
    after = np.minimum(y[trough_i], y[np.minimum(starts + 2, last)])
    troughs_x = x[trough_i]
    peaks = y[peak_i]
    peaks_x = x[peak_i]
    ts, ti = theil_sen(troughs_x, after)
    resid = after - (ti + ts * troughs_x)
    ss = float(np.sum((after - after.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid**2)) / ss if ss > 0 else 0.0
    ps, pi = theil_sen(peaks_x, peaks)
    chunks = []
    first = WARMUP_SECONDS
    while first + CHUNK_SECONDS <= float(x[-1]) + BIN_SECONDS:
        sel = (troughs_x >= first) & (troughs_x < first + CHUNK_SECONDS)
        if np.count_nonzero(sel) >= 4:
            chunks.append((first + CHUNK_SECONDS / 2, theil_sen(troughs_x[sel], after[sel])[0]))
        first += CHUNK_SECONDS
    return int(starts.size), ts, r2, ps, pi + ps * float(x[-1]), tuple(chunks)
