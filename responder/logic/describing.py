"""Investigation stage: an `Analysis` in words: the sparkline, the one-line summary, the terminal text and JSON.

Part of the memory-pattern classifier (`responder.logic.analysing` re-exports these for its callers). Used by
notices, Events, logs and the `analyze` command. It only renders what the analysis already holds (plus what a
raise buys, from `responder.logic.sizing`); it decides nothing. No I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from responder.logic import formatting, sizing
from responder.models.analyses import Analysis, Pattern

Array = npt.NDArray[np.float64]

SPARK_POINTS = 40


def sample_sparkline(t: Array, y: Array) -> tuple[float, ...]:
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


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


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


def to_text(analysis: Analysis) -> str:
    """The analysis for a human at a terminal, a few lines."""
    lines = [f"pattern: {analysis.pattern.value}", f"reason: {analysis.reason}"]
    if analysis.slope_bytes_per_hour is not None and analysis.pattern.is_leak:
        per_limit = (
            f" ({analysis.slope_percent_of_limit_per_hour:.2f} % of the limit/h)"
            if analysis.slope_percent_of_limit_per_hour is not None
            else ""
        )
        lines.append(f"growth: {formatting.mib(analysis.slope_bytes_per_hour)}/h{per_limit}")
    if analysis.time_to_oom_seconds is not None:
        lines.append(
            f"time to OOM: {formatting.hours(analysis.time_to_oom_seconds)} at the {formatting.mib(analysis.limit_bytes)} limit"
        )
    if analysis.peak_bytes is not None:
        lines.append(
            f"peak: {formatting.mib(analysis.peak_bytes)}, last: {formatting.mib(analysis.last_bytes)}"
        )
    if analysis.recommendation:
        value = (
            formatting.mib(analysis.recommended_limit_bytes) if analysis.recommended_limit_bytes else "none"
        )
        lines.append(f"recommended limit: {value} ({analysis.recommendation})")
    if analysis.lifetimes:
        lengths = ", ".join(formatting.hours(lt.duration_seconds) for lt in analysis.lifetimes)
        lines.append(f"lifetimes: {lengths} ({analysis.lifetime_trend.value})")
    spark = render_sparkline(analysis.sparkline, limit_bytes=analysis.limit_bytes)
    if spark:
        lines.append(f"window: {spark} (0 → {formatting.mib(analysis.limit_bytes or analysis.peak_bytes)})")
    lines += [f"note: {n}" for n in analysis.notes]
    return "\n".join(lines)


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
        growth = f"+{formatting.mib(analysis.slope_bytes_per_hour)}/h"
        if analysis.slope_percent_of_limit_per_hour is not None:
            growth += f" ({analysis.slope_percent_of_limit_per_hour:.1f} % of the limit/h)"
        parts.append(growth)
    if analysis.time_to_oom_seconds is not None:
        parts.append(
            f"OOM in {formatting.hours(analysis.time_to_oom_seconds)} at {formatting.mib(analysis.limit_bytes)}"
        )
    if new_limit_bytes is not None:
        bought = sizing.seconds_bought(analysis, new_limit_bytes=new_limit_bytes)
        if bought is not None:
            parts.append(f"raising to {formatting.mib(new_limit_bytes)} buys {formatting.hours(bought)}")
    if analysis.pattern is Pattern.SPIKE and analysis.peak_bytes is not None:
        parts.append(f"peak {formatting.mib(analysis.peak_bytes)}")
    if analysis.recommended_limit_bytes is not None:
        parts.append(f"right-sized limit {formatting.mib(analysis.recommended_limit_bytes)}")
    elif analysis.pattern is Pattern.ACCELERATING:
        parts.append("no limit is enough: restart and fix the leak")
    return ", ".join(parts)
