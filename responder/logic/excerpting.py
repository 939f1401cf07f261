"""Grepping a crashed container's previous log the way runbook RB-010 Step 4 does, safely for a notice.

Stage: investigate (pure). Keeps the lines that match the configured patterns, counts them, keeps the last
few, redacts secrets and caps each line's length; renders the excerpt for a notice, fenced for Slack and cut
honestly (a cut always says what was left out). It reads nothing: the log text is handed in.
"""

from __future__ import annotations

import collections
import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any

from responder.models import diagnostics, settings

__all__ = [
    "REDACTED",
    "describe",
    "excerpt",
    "fence",
    "has_run_before",
    "narrow_tail_lines",
]

REDACTED = "[REDACTED]"
_CUT = "…"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
"""Colour codes: a coloured "\x1b[31mheap" must still match \bheap\b."""


@functools.lru_cache(maxsize=64)
def _compile_any(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    # One alternation is scanned once per line instead of once per pattern; each keeps its own inline flags.
    return re.compile("|".join(f"(?:{_scoped(p)})" for p in patterns))


def _scoped(pattern: str) -> str:
    # A leading global flag group such as "(?i)" is not allowed inside an alternation; scope it instead.
    match = re.match(r"^\(\?([aiLmsux]+)\)", pattern)
    if match:
        return f"(?{match.group(1)}:{pattern[match.end() :]})"
    return pattern


@functools.lru_cache(maxsize=16)
def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _clean(line: str, *, options: settings.PreviousLogsSettings) -> str:
    if options.redact:
        line = _compile(options.redact).sub(REDACTED, line)
    # Control characters (ANSI colours, a stray \r) would garble a Slack code block or an Event note.
    line = "".join(ch if ch.isprintable() or ch == "\t" else " " for ch in line).rstrip()
    if len(line) > options.max_line_chars:
        line = line[: options.max_line_chars - 1] + _CUT
    return line


def excerpt(
    text: str,
    *,
    container: str,
    options: settings.PreviousLogsSettings,
    bytes_read: int | None = None,
    narrowed_to_lines: int | None = None,
) -> diagnostics.LogExcerpt:
    """Count the lines matching any pattern and keep the last `last_matches` of them, redacted and capped."""
    matcher = _compile_any(tuple(options.patterns))
    kept: collections.deque[str] = collections.deque(maxlen=options.last_matches or None)
    total = 0
    lines = text.splitlines()
    for raw in lines:
        line = _ANSI.sub("", raw)
        if matcher is not None and matcher.search(line):
            total += 1
            if options.last_matches:
                kept.append(line)
    return diagnostics.LogExcerpt(
        container=container,
        lines_scanned=len(lines),
        bytes_read=len(text.encode()) if bytes_read is None else bytes_read,
        matches_total=total,
        last_matches=tuple(_clean(line, options=options) for line in kept),
        narrowed_to_lines=narrowed_to_lines,
    )


def has_run_before(pod: Mapping[str, Any], container: str) -> bool:
    """Whether the container has a previous run whose log the kubelet keeps: a restart, or a terminated
    last state. Without one, asking for `previous=true` only earns the kubelet's 400."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") != container:
            continue
        last = (status.get("lastState") or {}).get("terminated")
        return bool(last) or int(status.get("restartCount") or 0) > 0
    # No status for it (the pod is being created, or the name is wrong): let the API server answer.
    return True


def narrow_tail_lines(sample: str, *, limit_bytes: int, tail_lines: int) -> int:
    """How many of the last lines should fit into `limit_bytes`, judged from a sample that did not fit.

    The kubelet applies `limitBytes` after `tailLines`, keeping the *start* of the tail: a log whose last
    `tail_lines` lines are too large loses its end, where the crash is. A second read asks for fewer lines.
    """
    lines = sample.count("\n") or 1
    average = max(1.0, len(sample.encode()) / lines)
    # 80 %: lines near the crash (stack traces) tend to be longer than the average.
    fitting = int(limit_bytes / average * 0.8)
    return max(1, min(tail_lines - 1, fitting))


def describe(found: diagnostics.LogExcerpt, *, options: settings.PreviousLogsSettings) -> list[str]:
    """Lines for a notice's detail: a summary line, then the kept matches (not yet fenced)."""
    if found.problem:
        return [f"previous log of {found.container}: {found.problem}"]
    scanned = f"{found.lines_scanned} lines, {found.bytes_read} bytes"
    if found.narrowed_to_lines is not None:
        scanned += (
            f"; the last {options.tail_lines} lines exceed {options.limit_bytes} bytes, "
            f"so only the last {found.narrowed_to_lines} were read"
        )
    if not found.matches_total:
        return [f"previous log of {found.container}: no line matches the memory patterns ({scanned})"]
    shown = len(found.last_matches)
    head = f"previous log of {found.container}: {found.matches_total} matching lines ({scanned})"
    if shown < found.matches_total:
        head += f", the last {shown} shown"
    return [head, *found.last_matches]


def fence(lines: Sequence[str], *, max_chars: int) -> str:
    """A Markdown code block of the lines within `max_chars`, cut at line boundaries from the oldest.

    Honest: when lines are dropped, the block starts with a line saying how many; a single line too long
    for the block is cut with an ellipsis. Triple backticks inside a line would close the block early, so
    they are broken up.
    """
    safe = [line.replace("```", "`\u200b``") for line in lines]
    overhead = len("```\n\n```")
    body = list(safe)
    dropped = 0
    while body:
        note = [f"[{dropped} earlier lines not shown]"] if dropped else []
        text = "\n".join([*note, *body])
        if len(text) + overhead <= max_chars:
            return f"```\n{text}\n```"
        body.pop(0)
        dropped += 1
    # Not even one line fits: show the newest one, cut.
    prefix = f"[{len(safe) - 1} earlier lines not shown]\n" if len(safe) > 1 else ""
    room = max(0, max_chars - overhead - len(prefix) - 1)
    last = safe[-1] if safe else ""
    return f"```\n{prefix}{last[:room]}{_CUT}\n```"
