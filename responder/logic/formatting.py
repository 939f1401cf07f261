"""Investigation stage: how the memory analysis writes byte amounts and durations in its reasons and summaries.

Pure string formatting, shared by the classifier's reasons, the sizing advice and the summaries so that they all
read alike. No I/O, no clock, no decisions.
"""

from __future__ import annotations

MI = 2**20


def hours(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 72 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def mib(value: float | int | None) -> str:
    if value is None:
        return "?"
    if abs(value) >= 2**30:
        return f"{value / 2**30:.2f} GiB"
    return f"{value / MI:.1f} MiB"
