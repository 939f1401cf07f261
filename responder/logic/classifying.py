"""Investigation stage: name the memory pattern from the fitted lifetimes (runbook RB-010 Step 3).

Part of the memory-pattern classifier (`responder.logic.analysing` is its entry point). Reads the fits of
`responder.logic.fitting` as a spike (the largest rise within five minutes that happens once, each lifetime's
start-up ramp ignored), a sawtooth leak, an accelerating leak, a linear leak or a stable series, each with its
reason in words. It neither sizes a limit nor predicts the OOM (`responder.logic.sizing`). No I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from responder.logic import fitting, formatting, preparing
from responder.models.analyses import Lifetime, LifetimeTrend, Pattern

Array = npt.NDArray[np.float64]

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

DAILY_MIN_KEPT = 0.5
"""Share of the slope that must survive removing the daily cycle."""

ACCEL_MIN_GROWTH = 2.0
"""The leak rate must grow at least this many times per day for the leak to be accelerating."""

ACCEL_MIN_CONCORDANCE = 0.75
"""Share of pairs of stretches in which the later one is the steeper, for an acceleration to count."""


def classify(
    fits: list[fitting.Fit],
    *,
    spike: tuple[float, float] | None,
    trend: LifetimeTrend,
    lifetimes: Sequence[Lifetime],
) -> tuple[Pattern, float | None, str]:
    total = sum(f.duration for f in fits)
    weights = np.array([f.duration for f in fits])
    level = float(np.median([f.level for f in fits]))
    slope = fitting.weighted_median([f.slope for f in fits], weights)
    if spike is not None:
        jump, ratio = spike
        return (
            Pattern.SPIKE,
            slope,
            f"spike: memory rose by {formatting.mib(jump)} ({ratio:.0%}) within {SPIKE_WINDOW_SECONDS / 60:.0f} min, "
            "once, from an otherwise steady level",
        )
    teeth = sum(f.teeth for f in fits) / len(fits)
    toothed = [f for f in fits if f.trough_slope is not None]
    rate = sum(f.teeth for f in fits) / (total / 3600.0)
    if toothed and rate >= fitting.SAWTOOTH_MIN_RATE:
        tw = np.array([f.duration for f in toothed])
        trough = fitting.weighted_median([f.trough_slope or 0.0 for f in toothed], tw)
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
                f"{formatting.mib(trough * 3600)}/h (R² {r2:.2f}, {growth:.0%} of the level over {formatting.hours(total)})",
            )
        if growth < LEAK_MIN_GROWTH:
            return (
                Pattern.STABLE,
                trough,
                f"stable: memory is collected {teeth:.0f} times per lifetime and the troughs do not grow "
                f"({growth:+.0%} of the level over {formatting.hours(total)})",
            )
        # Irregular troughs: judge the growth of the whole series below.
    r2 = float(np.average([f.r2 for f in fits], weights=weights))
    tail = fitting.weighted_median([f.tail_slope for f in fits], weights)
    growth = slope * total / level if level > 0 else 0.0
    if growth < LEAK_MIN_GROWTH:
        return (
            Pattern.STABLE,
            slope,
            f"stable: {growth:+.1%} of the level over {formatting.hours(total)} "
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
        f"linear leak: +{formatting.mib(slope * 3600)}/h within each lifetime (R² {r2:.2f}, "
        f"{growth:.0%} of the level over {formatting.hours(total)}, tail slope {tail / slope:.0%} of the overall one)",
    )


def _accel_reason(slope: float, accel: float | None, trend: LifetimeTrend) -> str:
    parts = []
    if accel is not None:
        parts.append(f"the growth rate increases {accel:.1f}-fold per day")
    if trend is LifetimeTrend.SHRINKING:
        parts.append("each lifetime is shorter than the one before")
    return f"accelerating leak: {' and '.join(parts)} (now +{formatting.mib(slope * 3600)}/h)"


def _acceleration(fits: list[fitting.Fit], *, troughs: bool = False) -> float | None:
    """How many times per day the leak rate grows, when it does by `ACCEL_MIN_GROWTH` or more.

    The slopes of 3-hour stretches, across every lifetime, against time: a Theil-Sen line through their
    logarithms. A linear leak's stretches all have the same slope, whatever the restarts.
    """
    chunks = [c for f in fits for c in (f.trough_chunks if troughs else f.chunks)]
    if len(chunks) < 3 or chunks[-1][0] - chunks[0][0] < 2 * fitting.CHUNK_SECONDS:
        return None
    mids = np.array([c[0] for c in chunks])
    slopes = np.array([c[1] for c in chunks])
    typical = float(np.median(slopes))
    if typical <= 0:
        return None
    logs = np.log(np.maximum(slopes, 0.1 * typical))
    growth_per_second, _ = fitting.theil_sen(mids, logs)
    per_day = math.exp(growth_per_second * 86400.0)
    # Noisy stretches (short teeth, traffic) scatter; a real acceleration makes later stretches steeper
    # than earlier ones almost every time (Kendall's concordance).
    i, j = fitting.pairs(int(logs.size))
    concordance = float(np.mean(logs[j] > logs[i]))
    return per_day if per_day >= ACCEL_MIN_GROWTH and concordance >= ACCEL_MIN_CONCORDANCE else None


def _survives_daily_cycle(fits: list[fitting.Fit]) -> bool:
    for f in fits:
        if f.deseasoned_slope is not None and f.deseasoned_slope < DAILY_MIN_KEPT * f.slope:
            return False
    return True


def find_largest_spike(
    t: Array, y: Array, bounds: list[tuple[int, int]], *, noise: float, step_seconds: float
) -> tuple[float, float] | None:
    """The largest rise within a few minutes that happened once (or twice) and stands out of the lifetime."""
    k = max(1, round(SPIKE_WINDOW_SECONDS / step_seconds))
    best: tuple[float, float] | None = None
    for a, b in bounds:
        start = int(np.searchsorted(t[a:b], t[a] + fitting.WARMUP_SECONDS)) + a
        seg = y[start:b]
        if seg.size < k + 10:
            continue
        smooth = preparing.median3(seg)
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
