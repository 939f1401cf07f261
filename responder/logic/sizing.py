"""Investigation stage: when a leaking container reaches its limit, and which limit fits the workload.

Part of the memory-pattern classifier (`responder.logic.analysing` is its entry point). From a named pattern and
its fits: the time to OOM (a line, the sawtooth's peaks, or a growing rate for an accelerating leak), the
right-sized limit (VPA / krr: peak + 15 %, or what a leak reaches between scheduled restarts), and how much time
a raise buys. It names no pattern and changes no limit itself. No I/O, no clock.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from responder.logic import fitting, formatting, preparing
from responder.models.analyses import Analysis, Pattern

Array = npt.NDArray[np.float64]

HEADROOM = 1.15
"""VPA / krr: recommended limit = peak (or peak reached within the restart interval) + 15 %."""


def estimate_time_to_oom(
    pattern: Pattern, *, fits: list[fitting.Fit], slope: float | None, t: Array, y: Array, limit: float
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


def _exponential_crossing(
    fits: list[fitting.Fit], *, now_bytes: float, end: float, limit: float
) -> float | None:
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
    k, log_r_end = fitting.theil_sen(mids, np.log(np.maximum(slopes, 0.1 * typical)))
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


def recommend(
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
            f"enough for {formatting.hours(restart_interval_seconds)} between restarts at the measured rate + 15 %; "
            "only fixing the leak ends the growth",
        )
    if pattern is Pattern.ACCELERATING:
        return None, "no limit is enough for an accelerating leak: restart and fix it"
    return None, None


def _daily_peaks(t: Array, y: Array) -> list[float]:
    days = ((t - t[0]) // 86400.0).astype(np.int64)
    return [
        float(y[days == d].max())
        for d in np.unique(days)
        if np.count_nonzero(days == d) >= preparing.MIN_SAMPLES
    ]


def _round_mi(value: float) -> int:
    return math.ceil(value / formatting.MI) * formatting.MI


def seconds_bought(analysis: Analysis, *, new_limit_bytes: int) -> float | None:
    """How much longer a leak takes to reach `new_limit_bytes` than the current limit; None for no leak."""
    slope = analysis.slope_bytes_per_hour
    if not analysis.pattern.is_leak or not slope or slope <= 0 or analysis.limit_bytes is None:
        return None
    return max(0.0, (new_limit_bytes - analysis.limit_bytes) / slope * 3600.0)
