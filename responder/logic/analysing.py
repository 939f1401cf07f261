"""Investigation stage: name the memory pattern of a workload's history (runbook RB-010 Step 3).

A pure function over samples: it takes a `WorkloadHistory` (read at the edge by `responder.prometheus`) and
returns an `Analysis` with the pattern, the growth rate, the time until the current limit is reached, the
lifetimes between restarts and a right-sized limit, each with its reason in words. No I/O, no clock.

How a series is read:
* Drop unreadable samples (NaN, infinite, negative); too few or too sparse → `insufficient_data`.
* Split it into container lifetimes at known restarts and at drops of more than half (Coroot's leak check:
  a restart the restart counter did not show, e.g. a replaced pod of the same name).
* Per lifetime, on 10-minute bin means: Theil-Sen slope (robust to outliers and scrape gaps), fit quality
  (R² of that line), tail slope (the last 30 %: a warm-up plateau has none; Coroot asks ≥ 0.3 × overall),
  head and tail thirds (acceleration), and, when a lifetime covers most of a day, the trend left after
  removing a daily cycle (24 h and 12 h harmonics) so that traffic cycles are not read as growth.
* On the raw points: garbage-collection drops and the troughs after them (sawtooth), and the largest rise
  within five minutes that happens once (spike), ignoring each lifetime's first minutes (start-up ramp).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt

from responder.models import analyses
from responder.models.analyses import Analysis, ContainerSeries, Lifetime, LifetimeTrend, Pattern

__all__ = [
    "analyse",
    "analyse_series",
    "render_sparkline",
    "seconds_bought",
    "summarize",
    "to_document",
    "to_text",
]

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
BIN_SECONDS = 600.0
"""Width of the bins whose means are fitted (at most `MAX_BINS` per lifetime: wider for long windows)."""
MAX_BINS = 200
WARMUP_SECONDS = 20 * 60.0
"""A lifetime's first minutes are its start-up ramp: not a spike."""
SPIKE_WINDOW_SECONDS = 5 * 60.0
"""A spike is a rise within this long."""
SPIKE_MIN_RATIO = 0.2
"""… of at least this share of the level before it …"""
SPIKE_SHARE_OF_RANGE = 0.5
"""… that makes at least this share of the lifetime's whole range, and happens at most twice."""
LEAK_MIN_GROWTH = 0.04
"""Growth over the fitted lifetimes, as a share of the level, below which a slope is noise."""
LEAK_MIN_R2 = 0.5
"""A line that explains less of the variance is not a steady growth."""
TAIL_MIN_RATIO = 0.3
"""Coroot: the tail must still grow at ≥ 0.3 × the overall slope (a plateau does not)."""
DAILY_MIN_SPAN_SECONDS = 20 * 3600.0
"""Lifetimes at least this long are checked for a daily cycle."""
DAILY_MIN_KEPT = 0.5
"""Share of the slope that must survive removing the daily cycle."""
ACCEL_MIN_GROWTH = 2.0
"""The leak rate must grow at least this many times per day for the leak to be accelerating."""
ACCEL_MIN_CONCORDANCE = 0.75
"""Share of pairs of stretches in which the later one is the steeper, for an acceleration to count."""
CHUNK_SECONDS = 3 * 3600.0
"""Stretches whose slopes show how the leak rate evolves (across lifetimes too)."""
SHRINK_RATIO = 0.75
"""Last complete lifetime shorter than this share of the first: lifetimes are shrinking."""
SAWTOOTH_MIN_TEETH = 4
"""Garbage-collection drops per fitted lifetime from which a series is a sawtooth."""
SAWTOOTH_MIN_DROP = 0.015
"""A drop of at least this share of the level (and `SAWTOOTH_NOISE_FACTOR` × the noise) is a collection."""
SAWTOOTH_NOISE_FACTOR = 3.0
"""Noise alone makes about two such drops a day: far fewer than `SAWTOOTH_MIN_RATE`."""
SAWTOOTH_MIN_RATE = 0.5
"""Collections per hour from which a series is a sawtooth (a garbage collector runs every few minutes)."""
PAGE_CACHE_SHARE = 0.5
"""Below this RSS ÷ working set, a growth may be page cache rather than a heap leak."""
HEADROOM = 1.15
"""VPA / krr: recommended limit = peak (or peak reached within the restart interval) + 15 %."""
SPARK_POINTS = 40
_MI = 2**20


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Fit:
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


def analyse(history: analyses.WorkloadHistory, *, restart_interval_seconds: float = 86400.0) -> Analysis:
    """The workload's pattern: each container series is analysed, the pattern most samples show wins.

    Ties go to the more urgent pattern; among series of the winning pattern the one closest to its limit
    gives the figures.
    """
    if history.problem is not None:
        return Analysis(pattern=Pattern.INSUFFICIENT_DATA, reason=history.problem, notes=history.notes)
    if not history.series:
        return Analysis(
            pattern=Pattern.INSUFFICIENT_DATA,
            reason="no memory series for the workload in the window",
            notes=history.notes,
        )
    chosen = _choose(history, restart_interval_seconds=restart_interval_seconds)
    reason = chosen.reason
    share = history.rss_share
    if chosen.pattern.is_leak and share is not None and share < PAGE_CACHE_SHARE:
        reason += (
            f"; RSS is only {share:.0%} of the working set: part of the growth may be page cache, which the "
            "kernel reclaims before an OOM kill"
        )
    return dataclasses.replace(chosen, reason=reason, rss_share=share, notes=history.notes)


def _choose(history: analyses.WorkloadHistory, *, restart_interval_seconds: float) -> Analysis:
    results = [
        analyse_series(
            s,
            limit_bytes=history.limit_bytes if history.limit_bytes is not None else s.limit_bytes,
            step_seconds=history.step_seconds,
            restart_interval_seconds=restart_interval_seconds,
        )
        for s in history.series
    ]
    known = [r for r in results if r.pattern is not Pattern.INSUFFICIENT_DATA]
    if not known:
        return max(results, key=lambda r: r.samples)
    weights: dict[Pattern, int] = {}
    for r in known:
        weights[r.pattern] = weights.get(r.pattern, 0) + r.samples
    pattern = max(weights, key=lambda p: (weights[p], -_URGENCY.index(p)))
    chosen = [r for r in known if r.pattern is pattern]
    best = min(
        chosen,
        key=lambda r: (
            r.time_to_oom_seconds if r.time_to_oom_seconds is not None else math.inf,
            -(r.peak_bytes or 0.0),
        ),
    )
    if len(results) == 1:
        return best
    prefix = f"{len(chosen)} of {len(results)} container series ({best.pod}: "
    return dataclasses.replace(best, reason=prefix + best.reason + ")")


_URGENCY = (
    Pattern.ACCELERATING,
    Pattern.LINEAR_LEAK,
    Pattern.SAWTOOTH_LEAK,
    Pattern.SPIKE,
    Pattern.STABLE,
    Pattern.INSUFFICIENT_DATA,
)


def analyse_series(
    series: ContainerSeries,
    *,
    limit_bytes: int | None,
    step_seconds: float = 60.0,
    restart_interval_seconds: float = 86400.0,
) -> Analysis:
    """The pattern of one container series (one pod, all its container restarts)."""
    t, y = _clean(series.timestamps, series.values)
    base = {"pod": series.pod, "container": series.container, "limit_bytes": limit_bytes}
    if t.size < MIN_SAMPLES:
        return Analysis(
            pattern=Pattern.INSUFFICIENT_DATA,
            reason=f"only {t.size} usable samples (at least {MIN_SAMPLES} needed)",
            samples=int(t.size),
            **base,  # type: ignore[arg-type]  # the three keys above have the fields' types
        )
    span = float(t[-1] - t[0])
    coverage = t.size * step_seconds / max(span, step_seconds)
    if span < MIN_SPAN_SECONDS or coverage < MIN_COVERAGE:
        why = (
            f"the samples cover {_hours(span)} (at least {_hours(MIN_SPAN_SECONDS)} needed)"
            if span < MIN_SPAN_SECONDS
            else f"only {coverage:.0%} of the expected scrapes are present"
        )
        return Analysis(
            pattern=Pattern.INSUFFICIENT_DATA,
            reason=why,
            samples=int(t.size),
            window_seconds=span,
            peak_bytes=float(y.max()),
            last_bytes=float(y[-1]),
            sparkline=_spark(t, y),
            **base,  # type: ignore[arg-type]  # as above
        )
    bounds = _lifetime_bounds(t, y, series.restarts)
    lifetimes = tuple(
        Lifetime(
            start=float(t[a]),
            end=float(t[b - 1]) if b < t.size else float(t[-1]),
            ended_by_restart=b < t.size,
            peak_bytes=float(y[a:b].max()),
        )
        for a, b in bounds
    )
    trend = _lifetime_trend(lifetimes)
    noise = _noise(y, bounds)
    fits = [
        _fit(t[a:b], y[a:b])
        for a, b in bounds
        if t[b - 1] - t[a] >= MIN_LIFETIME_SECONDS and b - a >= MIN_SAMPLES // 2
    ]
    spike = _largest_spike(t, y, bounds, noise=noise, step_seconds=step_seconds)
    common = {
        **base,
        "lifetimes": lifetimes,
        "lifetime_trend": trend,
        "samples": int(t.size),
        "window_seconds": span,
        "peak_bytes": float(y.max()),
        "last_bytes": float(y[-1]),
        "sparkline": _spark(t, y),
    }
    peak = _robust_peak(y)
    if not fits:
        return Analysis(
            pattern=Pattern.INSUFFICIENT_DATA,
            reason=f"no container lifetime lasted {_hours(MIN_LIFETIME_SECONDS)} ({len(lifetimes)} lifetimes)",
            **common,  # type: ignore[arg-type]  # the keys above have the fields' types
        )
    pattern, slope, why = _classify(fits, spike=spike, trend=trend, lifetimes=lifetimes)
    last_fit = fits[-1]
    tto = None
    if pattern.is_leak and limit_bytes:
        tto = _time_to_oom(pattern, fits=fits, slope=slope, t=t, y=y, limit=float(limit_bytes))
    recommended, how = _recommend(
        pattern,
        peak=peak,
        y=y,
        t=t,
        slope=slope,
        baseline=last_fit.intercept,
        restart_interval_seconds=restart_interval_seconds,
    )
    per_limit = slope * 3600.0 / limit_bytes * 100.0 if limit_bytes and slope is not None else None
    reason = why
    if tto is not None:
        reason += f"; at this rate the {_mib(limit_bytes)} limit is reached in {_hours(tto)}"
    elif pattern.is_leak and not limit_bytes:
        reason += "; the container has no memory limit, so no time to OOM"
    if trend is LifetimeTrend.SHRINKING:
        reason += "; the time between restarts is shrinking"
    return Analysis(
        pattern=pattern,
        reason=reason,
        slope_bytes_per_hour=slope * 3600.0 if slope is not None else None,
        slope_percent_of_limit_per_hour=per_limit,
        time_to_oom_seconds=tto,
        recommended_limit_bytes=recommended,
        recommendation=how,
        **common,  # type: ignore[arg-type]  # as above
    )


def _classify(
    fits: list[_Fit],
    *,
    spike: tuple[float, float] | None,
    trend: LifetimeTrend,
    lifetimes: Sequence[Lifetime],
) -> tuple[Pattern, float | None, str]:
    total = sum(f.duration for f in fits)
    weights = np.array([f.duration for f in fits])
    level = float(np.median([f.level for f in fits]))
    slope = _weighted_median([f.slope for f in fits], weights)
    if spike is not None:
        jump, ratio = spike
        return (
            Pattern.SPIKE,
            slope,
            f"spike: memory rose by {_mib(jump)} ({ratio:.0%}) within {SPIKE_WINDOW_SECONDS / 60:.0f} min, "
            "once, from an otherwise steady level",
        )
    teeth = sum(f.teeth for f in fits) / len(fits)
    toothed = [f for f in fits if f.trough_slope is not None]
    rate = sum(f.teeth for f in fits) / (total / 3600.0)
    if toothed and rate >= SAWTOOTH_MIN_RATE:
        tw = np.array([f.duration for f in toothed])
        trough = _weighted_median([f.trough_slope or 0.0 for f in toothed], tw)
        r2 = float(np.average([f.trough_r2 or 0.0 for f in toothed], weights=tw))
        growth = trough * total / level if level > 0 else 0.0
        if growth >= LEAK_MIN_GROWTH and r2 >= LEAK_MIN_R2 and _survives_daily_cycle(fits):
            accel = _acceleration(toothed, troughs=True)
            if accel is not None or trend is LifetimeTrend.SHRINKING:
                return Pattern.ACCELERATING, trough, _accel_reason(trough, accel, trend)
            return (
                Pattern.SAWTOOTH_LEAK,
                trough,
                f"sawtooth leak: {teeth:.0f} collections per lifetime, yet the troughs rise by "
                f"{_mib(trough * 3600)}/h (R² {r2:.2f}, {growth:.0%} of the level over {_hours(total)})",
            )
        if growth < LEAK_MIN_GROWTH:
            return (
                Pattern.STABLE,
                trough,
                f"stable: memory is collected {teeth:.0f} times per lifetime and the troughs do not grow "
                f"({growth:+.0%} of the level over {_hours(total)})",
            )
        # Irregular troughs: judge the growth of the whole series below.
    r2 = float(np.average([f.r2 for f in fits], weights=weights))
    tail = _weighted_median([f.tail_slope for f in fits], weights)
    growth = slope * total / level if level > 0 else 0.0
    if growth < LEAK_MIN_GROWTH:
        return (
            Pattern.STABLE,
            slope,
            f"stable: {growth:+.1%} of the level over {_hours(total)} "
            f"({len(lifetimes)} lifetime{'s' if len(lifetimes) != 1 else ''})",
        )
    if r2 < LEAK_MIN_R2:
        return (
            Pattern.STABLE,
            slope,
            f"stable: no steady growth (a line explains R² {r2:.2f} of the variance)",
        )
    if tail < TAIL_MIN_RATIO * slope:
        return (
            Pattern.STABLE,
            tail,
            f"stable: memory grew then levelled off (tail slope {tail / slope:.0%} of the overall one): "
            "a warm-up plateau",
        )
    if not _survives_daily_cycle(fits):
        return Pattern.STABLE, slope, "stable: the changes follow a daily cycle, without growth over the day"
    accel = _acceleration(fits)
    if accel is not None or trend is LifetimeTrend.SHRINKING:
        return Pattern.ACCELERATING, max(slope, tail), _accel_reason(slope, accel, trend)
    return (
        Pattern.LINEAR_LEAK,
        slope,
        f"linear leak: +{_mib(slope * 3600)}/h within each lifetime (R² {r2:.2f}, "
        f"{growth:.0%} of the level over {_hours(total)}, tail slope {tail / slope:.0%} of the overall one)",
    )


def _accel_reason(slope: float, accel: float | None, trend: LifetimeTrend) -> str:
    parts = []
    if accel is not None:
        parts.append(f"the growth rate increases {accel:.1f}-fold per day")
    if trend is LifetimeTrend.SHRINKING:
        parts.append("each lifetime is shorter than the one before")
    return f"accelerating leak: {' and '.join(parts)} (now +{_mib(slope * 3600)}/h)"


def _acceleration(fits: list[_Fit], *, troughs: bool = False) -> float | None:
    """How many times per day the leak rate grows, when it does by `ACCEL_MIN_GROWTH` or more.

    The slopes of 3-hour stretches, across every lifetime, against time: a Theil-Sen line through their
    logarithms. A linear leak's stretches all have the same slope, whatever the restarts.
    """
    chunks = [c for f in fits for c in (f.trough_chunks if troughs else f.chunks)]
    if len(chunks) < 3 or chunks[-1][0] - chunks[0][0] < 2 * CHUNK_SECONDS:
        return None
    mids = np.array([c[0] for c in chunks])
    slopes = np.array([c[1] for c in chunks])
    typical = float(np.median(slopes))
    if typical <= 0:
        return None
    logs = np.log(np.maximum(slopes, 0.1 * typical))
    growth_per_second, _ = _theil_sen(mids, logs)
    per_day = math.exp(growth_per_second * 86400.0)
    # Noisy stretches (short teeth, traffic) scatter; a real acceleration makes later stretches steeper
    # than earlier ones almost every time (Kendall's concordance).
    i, j = _pairs(int(logs.size))
    concordance = float(np.mean(logs[j] > logs[i]))
    return per_day if per_day >= ACCEL_MIN_GROWTH and concordance >= ACCEL_MIN_CONCORDANCE else None


def _survives_daily_cycle(fits: list[_Fit]) -> bool:
    for f in fits:
        if f.deseasoned_slope is not None and f.deseasoned_slope < DAILY_MIN_KEPT * f.slope:
            return False
    return True


def _time_to_oom(
    pattern: Pattern, *, fits: list[_Fit], slope: float | None, t: Array, y: Array, limit: float
) -> float | None:
    f = fits[-1]
    if pattern is Pattern.ACCELERATING:
        grown = _exponential_crossing(fits, now_bytes=float(np.median(y[-5:])), end=float(t[-1]), limit=limit)
        return grown if grown is not None else _quadratic_crossing(t, y, start=f.start, limit=limit)
    if f.end < float(t[-1]):
        # The current lifetime is too young to fit (the container restarted lately): start from its level.
        if _rate_is_unknown(slope):
            return None
        assert slope is not None
        return max(0.0, (limit - float(np.median(y[-5:]))) / slope)
    if pattern is Pattern.SAWTOOTH_LEAK and f.peak_line_end is not None:
        # The OOM happens at a peak, before collection: extrapolate the peaks.
        now = f.peak_line_end
        rate = f.peak_slope if f.peak_slope and f.peak_slope > 0 else slope
    else:
        now = f.intercept + f.slope * (f.end - f.start)
        rate = slope
    if rate is None or rate <= 0:
        return None
    return max(0.0, (limit - now) / rate)


def _exponential_crossing(fits: list[_Fit], *, now_bytes: float, end: float, limit: float) -> float | None:
    """When a leak whose rate keeps growing at its measured pace reaches the limit.

    The rate of 3-hour stretches, r(t) = r_end · e^(k t), integrated from the end of the window:
    r_end (e^(kT) − 1) / k = limit − now, so T = ln(1 + k (limit − now) / r_end) / k.
    """
    chunks = [c for f in fits for c in (f.trough_chunks or f.chunks)]
    if len(chunks) < 3:
        return None
    mids = np.array([c[0] for c in chunks]) - end
    slopes = np.array([c[1] for c in chunks])
    typical = float(np.median(slopes))
    if typical <= 0:
        return None
    k, log_r_end = _theil_sen(mids, np.log(np.maximum(slopes, 0.1 * typical)))
    r_end = math.exp(log_r_end)
    remaining = limit - now_bytes
    if remaining <= 0:
        return 0.0
    if k <= 0:
        return remaining / r_end
    return math.log1p(k * remaining / r_end) / k


def _rate_is_unknown(slope: float | None) -> bool:
    return slope is None or slope <= 0


def _quadratic_crossing(t: Array, y: Array, *, start: float, limit: float) -> float | None:
    """When a quadratic through the last lifetime reaches the limit (the rate keeps increasing)."""
    sel = t >= start
    x = (t[sel] - t[sel][-1]) / 3600.0
    if x.size < 3:
        return None
    c2, c1, c0 = np.polyfit(x, y[sel], 2)
    if c0 >= limit:
        return 0.0
    if c2 <= 0:
        return (limit - c0) / c1 * 3600.0 if c1 > 0 else None
    # Positive root of c2 x² + c1 x + c0 - limit = 0 (x in hours from the end of the window).
    disc = c1 * c1 - 4 * c2 * (c0 - limit)
    root = (-c1 + math.sqrt(disc)) / (2 * c2)
    return float(root * 3600.0) if root > 0 else 0.0


def _recommend(
    pattern: Pattern,
    *,
    peak: float,
    y: Array,
    t: Array,
    slope: float | None,
    baseline: float,
    restart_interval_seconds: float,
) -> tuple[int | None, str | None]:
    if pattern is Pattern.STABLE:
        daily = _daily_peaks(t, y)
        if len(daily) >= 3:
            value = float(np.percentile(daily, 90)) * HEADROOM
            return _round_mi(value), f"p90 of {len(daily)} daily peaks + 15 %"
        return _round_mi(peak * HEADROOM), "peak of the window + 15 % (as the VPA and krr size)"
    if pattern is Pattern.SPIKE:
        return _round_mi(float(y.max()) * HEADROOM), "the spike's peak + 15 %, so the same operation fits"
    if pattern in (Pattern.LINEAR_LEAK, Pattern.SAWTOOTH_LEAK) and slope is not None and slope > 0:
        value = (max(baseline, 0.0) + slope * restart_interval_seconds) * HEADROOM
        return (
            _round_mi(max(value, peak * HEADROOM)),
            f"enough for {_hours(restart_interval_seconds)} between restarts at the measured rate + 15 %; "
            "only fixing the leak ends the growth",
        )
    if pattern is Pattern.ACCELERATING:
        return None, "no limit is enough for an accelerating leak: restart and fix it"
    return None, None


def _daily_peaks(t: Array, y: Array) -> list[float]:
    days = ((t - t[0]) // 86400.0).astype(np.int64)
    return [float(y[days == d].max()) for d in np.unique(days) if np.count_nonzero(days == d) >= MIN_SAMPLES]


def _round_mi(value: float) -> int:
    return math.ceil(value / _MI) * _MI


def _median3(y: Array) -> Array:
    """The median of each 3-sample window (without sorting: a glitch in one scrape disappears)."""
    a, b, c = y[:-2], y[1:-1], y[2:]
    return np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))


def _robust_peak(y: Array) -> float:
    # A single corrupt sample must not set the limit.
    return float(_median3(y).max()) if y.size >= 3 else float(y.max())


def _clean(timestamps: Sequence[float], values: Sequence[float]) -> tuple[Array, Array]:
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


def _lifetime_bounds(t: Array, y: Array, restarts: Sequence[float]) -> list[tuple[int, int]]:
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


def _lifetime_trend(lifetimes: Sequence[Lifetime]) -> LifetimeTrend:
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


def _noise(y: Array, bounds: list[tuple[int, int]]) -> float:
    diffs = [np.diff(y[a:b]) for a, b in bounds if b - a > 2]
    if not diffs:
        return 0.0
    d = np.concatenate(diffs)
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / math.sqrt(2))


@cache
def _pairs(n: int) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    i, j = np.triu_indices(n, k=1)
    return i, j


def _theil_sen(x: Array, y: Array) -> tuple[float, float]:
    if x.size < 2:
        return 0.0, float(y[0]) if y.size else 0.0
    i, j = _pairs(int(x.size))
    slope = float(np.median((y[j] - y[i]) / (x[j] - x[i])))
    return slope, float(np.median(y - slope * x))


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


def _fit(t: Array, y: Array) -> _Fit:
    x = t - t[0]
    xb, yb = _bins(x, y)
    slope, intercept = _theil_sen(xb, yb)
    resid = yb - (intercept + slope * xb)
    ss_tot = float(np.sum((yb - yb.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid**2)) / ss_tot if ss_tot > 0 else 0.0
    span = float(x[-1])
    tail = xb >= 0.7 * span
    tail_slope = _theil_sen(xb[tail], yb[tail])[0] if np.count_nonzero(tail) >= 3 else slope
    chunks = []
    first = WARMUP_SECONDS
    while first + CHUNK_SECONDS <= span + BIN_SECONDS:
        sel = (xb >= first) & (xb < first + CHUNK_SECONDS)
        if np.count_nonzero(sel) >= 6:
            chunks.append((float(t[0]) + first + CHUNK_SECONDS / 2, _theil_sen(xb[sel], yb[sel])[0]))
        first += CHUNK_SECONDS
    deseasoned = _deseasoned_slope(xb, yb) if span >= DAILY_MIN_SPAN_SECONDS else None
    level = float(np.median(y))
    teeth, trough_slope, trough_r2, peak_slope, peak_end, trough_chunks = _sawtooth(x, y)
    return _Fit(
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
    ts, ti = _theil_sen(troughs_x, after)
    resid = after - (ti + ts * troughs_x)
    ss = float(np.sum((after - after.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid**2)) / ss if ss > 0 else 0.0
    ps, pi = _theil_sen(peaks_x, peaks)
    chunks = []
    first = WARMUP_SECONDS
    while first + CHUNK_SECONDS <= float(x[-1]) + BIN_SECONDS:
        sel = (troughs_x >= first) & (troughs_x < first + CHUNK_SECONDS)
        if np.count_nonzero(sel) >= 4:
            chunks.append((first + CHUNK_SECONDS / 2, _theil_sen(troughs_x[sel], after[sel])[0]))
        first += CHUNK_SECONDS
    return int(starts.size), ts, r2, ps, pi + ps * float(x[-1]), tuple(chunks)


def _largest_spike(
    t: Array, y: Array, bounds: list[tuple[int, int]], *, noise: float, step_seconds: float
) -> tuple[float, float] | None:
    """The largest rise within a few minutes that happened once (or twice) and stands out of the lifetime."""
    k = max(1, round(SPIKE_WINDOW_SECONDS / step_seconds))
    best: tuple[float, float] | None = None
    for a, b in bounds:
        start = int(np.searchsorted(t[a:b], t[a] + WARMUP_SECONDS)) + a
        seg = y[start:b]
        if seg.size < k + 10:
            continue
        smooth = _median3(seg)
        if b < y.size:
            # The lifetime ended in a restart: its last sample, however alone, is the rise that killed it.
            smooth = np.concatenate((smooth, seg[-1:]))
        # Pad the end: a spike that gets the container OOM-killed ends its lifetime within minutes.
        padded = np.concatenate((smooth, np.full(k, smooth[-1])))
        rise = padded[k:] - smooth
        i = int(np.argmax(rise))
        jump = float(rise[i])
        before = float(np.median(smooth[max(0, i - 30) : i + 1]))
        ordered = np.sort(smooth)
        spread = float(ordered[int(0.99 * (ordered.size - 1))] - ordered[int(0.01 * (ordered.size - 1))])
        if before <= 0 or jump < SPIKE_MIN_RATIO * before or jump < 8 * noise:
            continue
        if jump < SPIKE_SHARE_OF_RANGE * spread:
            continue
        # Periodic rises (a sawtooth's refills) are not one operation.
        events = np.flatnonzero(rise >= 0.5 * jump)
        separate = 1 + int(np.count_nonzero(np.diff(events) > k))
        if separate > 2:
            continue
        if best is None or jump > best[0]:
            best = (jump, jump / before)
    return best


def _weighted_median(values: Sequence[float], weights: npt.NDArray[np.float64]) -> float:
    v = np.asarray(values, dtype=np.float64)
    order = np.argsort(v)
    cum = np.cumsum(weights[order])
    return float(v[order][int(np.searchsorted(cum, cum[-1] / 2))])


def _spark(t: Array, y: Array) -> tuple[float, ...]:
    if y.size <= SPARK_POINTS:
        return tuple(float(v) for v in y)
    idx = np.minimum(((t - t[0]) / (t[-1] - t[0]) * SPARK_POINTS).astype(np.int64), SPARK_POINTS - 1)
    peaks = np.zeros(SPARK_POINTS)
    np.maximum.at(peaks, idx, y)
    present = np.bincount(idx, minlength=SPARK_POINTS) > 0
    return tuple(float(p) if ok else math.nan for p, ok in zip(peaks, present, strict=True))


_BARS = "▁▂▃▄▅▆▇█"


def render_sparkline(values: Sequence[float], *, limit_bytes: int | None) -> str:
    """Bars from zero to the limit (or the peak without one), `·` for gaps, `‼` where the limit is reached."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return ""
    top = float(limit_bytes) if limit_bytes else max(finite)
    chars = []
    for v in values:
        if not math.isfinite(v):
            chars.append("·")
        elif limit_bytes and v >= limit_bytes:
            chars.append("‼")
        else:
            chars.append(_BARS[min(len(_BARS) - 1, int(v / top * len(_BARS))) if top > 0 else 0])
    return "".join(chars)


def _hours(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 72 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _mib(value: float | int | None) -> str:
    if value is None:
        return "?"
    if abs(value) >= 2**30:
        return f"{value / 2**30:.2f} GiB"
    return f"{value / _MI:.1f} MiB"


def to_document(analysis: Analysis) -> dict[str, Any]:
    """The analysis as plain JSON-able data (the `analyze --output json` document and log fields)."""
    return {
        "pattern": analysis.pattern.value,
        "reason": analysis.reason,
        "time_to_oom_seconds": _finite(analysis.time_to_oom_seconds),
        "slope_bytes_per_hour": _finite(analysis.slope_bytes_per_hour),
        "slope_percent_of_limit_per_hour": _finite(analysis.slope_percent_of_limit_per_hour),
        "recommended_limit_bytes": analysis.recommended_limit_bytes,
        "recommendation": analysis.recommendation,
        "limit_bytes": analysis.limit_bytes,
        "peak_bytes": _finite(analysis.peak_bytes),
        "last_bytes": _finite(analysis.last_bytes),
        "pod": analysis.pod,
        "container": analysis.container,
        "lifetimes": [
            {
                "start": lt.start,
                "end": lt.end,
                "duration_seconds": lt.duration_seconds,
                "ended_by_restart": lt.ended_by_restart,
                "peak_bytes": lt.peak_bytes,
            }
            for lt in analysis.lifetimes
        ],
        "lifetime_trend": analysis.lifetime_trend.value,
        "samples": analysis.samples,
        "window_seconds": analysis.window_seconds,
        "rss_share": _finite(analysis.rss_share),
        "notes": list(analysis.notes),
        "sparkline": render_sparkline(analysis.sparkline, limit_bytes=analysis.limit_bytes),
    }


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def to_text(analysis: Analysis) -> str:
    """The analysis for a human at a terminal, a few lines."""
    lines = [f"pattern: {analysis.pattern.value}", f"reason: {analysis.reason}"]
    if analysis.slope_bytes_per_hour is not None and analysis.pattern.is_leak:
        per_limit = (
            f" ({analysis.slope_percent_of_limit_per_hour:.2f} % of the limit/h)"
            if analysis.slope_percent_of_limit_per_hour is not None
            else ""
        )
        lines.append(f"growth: {_mib(analysis.slope_bytes_per_hour)}/h{per_limit}")
    if analysis.time_to_oom_seconds is not None:
        lines.append(
            f"time to OOM: {_hours(analysis.time_to_oom_seconds)} at the {_mib(analysis.limit_bytes)} limit"
        )
    if analysis.peak_bytes is not None:
        lines.append(f"peak: {_mib(analysis.peak_bytes)}, last: {_mib(analysis.last_bytes)}")
    if analysis.recommendation:
        value = _mib(analysis.recommended_limit_bytes) if analysis.recommended_limit_bytes else "none"
        lines.append(f"recommended limit: {value} ({analysis.recommendation})")
    if analysis.lifetimes:
        lengths = ", ".join(_hours(lt.duration_seconds) for lt in analysis.lifetimes)
        lines.append(f"lifetimes: {lengths} ({analysis.lifetime_trend.value})")
    spark = render_sparkline(analysis.sparkline, limit_bytes=analysis.limit_bytes)
    if spark:
        lines.append(f"window: {spark} (0 → {_mib(analysis.limit_bytes or analysis.peak_bytes)})")
    lines += [f"note: {n}" for n in analysis.notes]
    return "\n".join(lines)


def seconds_bought(analysis: Analysis, *, new_limit_bytes: int) -> float | None:
    """How much longer a leak takes to reach `new_limit_bytes` than the current limit; None for no leak."""
    slope = analysis.slope_bytes_per_hour
    if not analysis.pattern.is_leak or not slope or slope <= 0 or analysis.limit_bytes is None:
        return None
    return max(0.0, (new_limit_bytes - analysis.limit_bytes) / slope * 3600.0)


_NAMES = {
    Pattern.LINEAR_LEAK: "linear leak",
    Pattern.SAWTOOTH_LEAK: "sawtooth leak",
    Pattern.ACCELERATING: "accelerating leak",
    Pattern.SPIKE: "spike",
    Pattern.STABLE: "stable",
    Pattern.INSUFFICIENT_DATA: "insufficient data",
}


def summarize(analysis: Analysis, *, new_limit_bytes: int | None = None) -> str:
    """One line for a notice, an Event or a log: pattern, growth, time to OOM, what a raise buys, right size."""
    if analysis.pattern is Pattern.INSUFFICIENT_DATA:
        return f"memory history: insufficient data ({analysis.reason})"
    parts = [f"memory history: {_NAMES[analysis.pattern]}"]
    if analysis.pattern.is_leak and analysis.slope_bytes_per_hour is not None:
        growth = f"+{_mib(analysis.slope_bytes_per_hour)}/h"
        if analysis.slope_percent_of_limit_per_hour is not None:
            growth += f" ({analysis.slope_percent_of_limit_per_hour:.1f} % of the limit/h)"
        parts.append(growth)
    if analysis.time_to_oom_seconds is not None:
        parts.append(f"OOM in {_hours(analysis.time_to_oom_seconds)} at {_mib(analysis.limit_bytes)}")
    if new_limit_bytes is not None:
        bought = seconds_bought(analysis, new_limit_bytes=new_limit_bytes)
        if bought is not None:
            parts.append(f"raising to {_mib(new_limit_bytes)} buys {_hours(bought)}")
    if analysis.pattern is Pattern.SPIKE and analysis.peak_bytes is not None:
        parts.append(f"peak {_mib(analysis.peak_bytes)}")
    if analysis.recommended_limit_bytes is not None:
        parts.append(f"right-sized limit {_mib(analysis.recommended_limit_bytes)}")
    elif analysis.pattern is Pattern.ACCELERATING:
        parts.append("no limit is enough: restart and fix the leak")
    return ", ".join(parts)
