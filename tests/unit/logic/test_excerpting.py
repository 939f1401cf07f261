"""Grepping a previous log for the notice.

Covers: the runbook's default patterns (and only matching lines), counting every match while keeping the
last N, redaction of secrets before the length cap, control characters, configurable patterns with their
own flags, narrowing the tail of a log too large, the notice lines for each case, and the honest fence.
"""

from __future__ import annotations

import pytest

from responder.logic import excerpting
from responder.models import settings

NODE_CRASH = """\
2026-12-01T10:00:00Z listening on :8080
2026-12-01T10:05:00Z GET /api/orders 200
<--- Last few GCs --->
[1:0x5d3b2c0]   301 ms: Mark-Compact 2040.1 (2080.5) -> 2039.9 (2081.5) MB, allocation failure
FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory
 1: 0xb7a940 node::Abort() [node]
"""


def options(**changes: object) -> settings.PreviousLogsSettings:
    return settings.PreviousLogsSettings.model_validate(changes)


def test_keeps_only_the_lines_the_runbook_greps_for() -> None:
    found = excerpting.excerpt(NODE_CRASH, container="app", options=options())
    assert found.matches_total == 1
    assert found.last_matches == (
        "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory",
    )
    assert found.lines_scanned == 6
    assert found.bytes_read == len(NODE_CRASH.encode())


@pytest.mark.parametrize(
    "line",
    [
        pytest.param("java.lang.OutOfMemoryError: Java heap space", id="jvm"),
        pytest.param("MemoryError", id="python"),
        pytest.param("runtime: out of memory: cannot allocate 1048576-byte block", id="go"),
        pytest.param("malloc(): memory allocation failed", id="runbook-allocation"),
        pytest.param("suspected LEAK in cache", id="leak-any-case"),
        pytest.param("mmap: Cannot allocate memory", id="glibc"),
    ],
)
def test_default_patterns_catch_every_runtimes_wording(line: str) -> None:
    assert excerpting.excerpt(f"ok\n{line}\nok\n", container="c", options=options()).matches_total == 1


def test_counts_every_match_and_keeps_the_last_ones_in_order() -> None:
    text = "\n".join(f"heap usage {i}" for i in range(12))
    found = excerpting.excerpt(text, container="c", options=options(last_matches=3))
    assert found.matches_total == 12
    assert found.last_matches == ("heap usage 9", "heap usage 10", "heap usage 11")


def test_zero_last_matches_counts_without_keeping() -> None:
    found = excerpting.excerpt("heap\nheap\n", container="c", options=options(last_matches=0))
    assert (found.matches_total, found.last_matches) == (2, ())


def test_redacts_secrets_before_cutting_long_lines() -> None:
    line = (
        "OutOfMemoryError while calling https://svc:hunter2@db/x with password=s3cr3t token: abc.def "
        + "x" * 400
    )
    [kept] = excerpting.excerpt(line, container="c", options=options(max_line_chars=120)).last_matches
    assert "hunter2" not in kept and "s3cr3t" not in kept and "abc.def" not in kept
    assert kept.count(excerpting.REDACTED) == 3
    assert len(kept) == 120 and kept.endswith("…")


def test_a_null_redaction_keeps_lines_as_they_are() -> None:
    [kept] = excerpting.excerpt("heap password=x", container="c", options=options(redact=None)).last_matches
    assert kept == "heap password=x"


def test_control_characters_cannot_garble_the_block() -> None:
    [kept] = excerpting.excerpt(
        "\x1b[31mheap\x1b[0m exhausted\r", container="c", options=options()
    ).last_matches
    assert "\x1b" not in kept and "\r" not in kept
    assert "heap" in kept


def test_configured_patterns_replace_the_defaults_and_keep_their_own_flags() -> None:
    text = "GC overhead limit exceeded\nheap\nevicted: Cache FULL\n"
    found = excerpting.excerpt(
        text, container="c", options=options(patterns=["GC overhead", "(?i)cache full"])
    )
    assert found.last_matches == ("GC overhead limit exceeded", "evicted: Cache FULL")


def test_a_bad_pattern_is_refused_when_the_config_loads() -> None:
    with pytest.raises(ValueError, match="bad regular expression"):
        options(patterns=["(unclosed"])


def test_narrows_the_tail_to_what_fits_the_byte_limit() -> None:
    sample = "".join(f"{i:09d} a line of forty bytes, give or take\n" for i in range(100))
    lines = excerpting.narrow_tail_lines(sample, limit_bytes=len(sample.encode()), tail_lines=2000)
    assert 70 <= lines < 100
    assert excerpting.narrow_tail_lines("x" * 10_000, limit_bytes=100, tail_lines=50) == 1


def test_describes_matches_and_says_how_many_are_not_shown() -> None:
    text = "\n".join(f"heap {i}" for i in range(7))
    opts = options(last_matches=2)
    lines = excerpting.describe(excerpting.excerpt(text, container="app", options=opts), options=opts)
    assert lines[0] == "previous log of app: 7 matching lines (7 lines, 48 bytes), the last 2 shown"
    assert lines[1:] == ["heap 5", "heap 6"]


def test_describes_a_narrowed_read_honestly() -> None:
    opts = options(tail_lines=2000, limit_bytes=1000)
    found = excerpting.excerpt("heap\n", container="app", options=opts, bytes_read=1000, narrowed_to_lines=40)
    assert (
        "the last 2000 lines exceed 1000 bytes, so only the last 40 were read"
        in excerpting.describe(found, options=opts)[0]
    )


def test_describes_no_match_and_a_problem_in_one_line() -> None:
    opts = options()
    quiet = excerpting.excerpt("all good\n", container="app", options=opts)
    assert excerpting.describe(quiet, options=opts) == [
        "previous log of app: no line matches the memory patterns (1 lines, 9 bytes)"
    ]
    broken = excerpting.excerpt("", container="app", options=opts)
    broken = type(broken)(container="app", problem="the container has not run before")
    assert excerpting.describe(broken, options=opts) == [
        "previous log of app: the container has not run before"
    ]


def test_fence_keeps_everything_that_fits() -> None:
    assert excerpting.fence(["a", "b"], max_chars=100) == "```\na\nb\n```"


def test_fence_drops_the_oldest_lines_and_says_how_many() -> None:
    lines = [f"line {i} " + "x" * 30 for i in range(10)]
    block = excerpting.fence(lines, max_chars=200)
    assert len(block) <= 200
    assert block.startswith("```\n[") and "earlier lines not shown]" in block
    assert block.rstrip("`").rstrip().endswith(lines[-1])
    dropped = int(block.split("[", 1)[1].split(" ", 1)[0])
    assert block.count("line ") == 10 - dropped


def test_fence_cuts_a_single_line_too_long_and_marks_the_cut() -> None:
    block = excerpting.fence(["y" * 500], max_chars=100)
    assert len(block) <= 100 and block.endswith("…\n```")


def test_fence_cannot_be_closed_early_by_backticks_in_a_line() -> None:
    block = excerpting.fence(["before ``` after"], max_chars=100)
    assert block.count("```") == 2
