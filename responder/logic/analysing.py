"""Investigation stage: name the memory pattern of a workload's history (runbook RB-010 Step 3).

A pure function over samples: it takes a `WorkloadHistory` (read at the edge by `responder.prometheus`) and
returns an `Analysis` with the pattern, the growth rate, the time until the current limit is reached, the
lifetimes between restarts and a right-sized limit, each with its reason in words. No I/O, no clock.

This module is the entry point and the choice between container series; the work is split by job:
`preparing` (clean, split into lifetimes), `fitting` (robust statistics per lifetime), `classifying` (the
pattern), `sizing` (time to OOM, right-sized limit) and `describing` (words and sparkline), all in
`responder.logic`.

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
import math

from responder.logic import classifying, describing, fitting, formatting, preparing, sizing
from responder.models import analyses
from responder.models.analyses import Analysis, ContainerSeries, Lifetime, LifetimeTrend, Pattern

__all__ = [
    "SPARK_POINTS",
    "analyse",
    "analyse_series",
    "render_sparkline",
    "seconds_bought",
    "summarize",
    "to_document",
    "to_text",
]

# The exception to importing modules, not names: the analysis keeps one front door, so that notices, reports, the
# `analyze` command and the accuracy benchmark need not know how the classifier is split into modules.
SPARK_POINTS = describing.SPARK_POINTS
render_sparkline = describing.render_sparkline
seconds_bought = sizing.seconds_bought
summarize = describing.summarize
to_document = describing.to_document
to_text = describing.to_text

PAGE_CACHE_SHARE = 0.5
"""Below this RSS ÷ working set, a growth may be page cache rather than a heap leak."""


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
    t, y = preparing.clean(series.timestamps, series.values)
    base = {"pod": series.pod, "container": series.container, "limit_bytes": limit_bytes}
    if t.size < preparing.MIN_SAMPLES:
        return Analysis(
            pattern=Pattern.INSUFFICIENT_DATA,
            reason=f"only {t.size} usable samples (at least {preparing.MIN_SAMPLES} needed)",
            samples=int(t.size),
            **base,  # type: ignore[arg-type]  # the three keys above have the fields' types
        )
    span = float(t[-1] - t[0])
    coverage = t.size * step_seconds / max(span, step_seconds)
    if span < preparing.MIN_SPAN_SECONDS or coverage < preparing.MIN_COVERAGE:
        why = (
            f"the samples cover {formatting.hours(span)} (at least {formatting.hours(preparing.MIN_SPAN_SECONDS)} needed)"
            if span < preparing.MIN_SPAN_SECONDS
            else f"only {coverage:.0%} of the expected scrapes are present"
        )
        return Analysis(
            pattern=Pattern.INSUFFICIENT_DATA,
            reason=why,
            samples=int(t.size),
            window_seconds=span,
            peak_bytes=float(y.max()),
            last_bytes=float(y[-1]),
            sparkline=describing.sample_sparkline(t, y),
            **base,  # type: ignore[arg-type]  # as above
        )
    bounds = preparing.lifetime_bounds(t, y, series.restarts)
    lifetimes = tuple(
        Lifetime(
            start=float(t[a]),
            end=float(t[b - 1]) if b < t.size else float(t[-1]),
            ended_by_restart=b < t.size,
            peak_bytes=float(y[a:b].max()),
        )
        for a, b in bounds
    )
    trend = preparing.lifetime_trend(lifetimes)
    noise = preparing.measure_noise(y, bounds)
    fits = [
        fitting.fit_lifetime(t[a:b], y[a:b])
        for a, b in bounds
        if t[b - 1] - t[a] >= preparing.MIN_LIFETIME_SECONDS and b - a >= preparing.MIN_SAMPLES // 2
    ]
    spike = classifying.find_largest_spike(t, y, bounds, noise=noise, step_seconds=step_seconds)
    common = {
        **base,
        "lifetimes": lifetimes,
        "lifetime_trend": trend,
        "samples": int(t.size),
        "window_seconds": span,
        "peak_bytes": float(y.max()),
        "last_bytes": float(y[-1]),
        "sparkline": describing.sample_sparkline(t, y),
    }
    peak = preparing.robust_peak(y)
    if not fits:
        return Analysis(
            pattern=Pattern.INSUFFICIENT_DATA,
            reason=f"no container lifetime lasted {formatting.hours(preparing.MIN_LIFETIME_SECONDS)} ({len(lifetimes)} lifetimes)",
            **common,  # type: ignore[arg-type]  # the keys above have the fields' types
        )
    pattern, slope, why = classifying.classify(fits, spike=spike, trend=trend, lifetimes=lifetimes)
    last_fit = fits[-1]
    tto = None
    if pattern.is_leak and limit_bytes:
        tto = sizing.estimate_time_to_oom(pattern, fits=fits, slope=slope, t=t, y=y, limit=float(limit_bytes))
    recommended, how = sizing.recommend(
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
        reason += (
            f"; at this rate the {formatting.mib(limit_bytes)} limit is reached in {formatting.hours(tto)}"
        )
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
