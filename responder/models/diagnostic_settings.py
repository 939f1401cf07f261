"""The configuration of the evidence the runbook collects (Steps 4-5): previous logs and heap dumps.

Data only, part of `responder.models.settings` (which re-exports every name here): frozen models that forbid
unknown keys, each field with its docstring; `config/responder.yaml` documents the same keys.
"""

from __future__ import annotations

import re
from typing import Annotated

import pydantic
from pydantic import Field

from responder.models import schemas

__all__ = [
    "DEFAULT_LOG_PATTERNS",
    "DEFAULT_REDACTION",
    "DiagnosticsSettings",
    "HeapDumpRuntime",
    "HeapDumpSettings",
    "PreviousLogsSettings",
]


DEFAULT_LOG_PATTERNS = (
    r"(?i)out of memory",
    r"(?i)memory allocation failed",
    r"(?i)\bheap\b",
    r"(?i)\bleak",
    r"(?i)OutOfMemoryError",
    r"(?i)\bMemoryError\b",
    r"(?i)cannot allocate memory",
)
"""Runbook RB-010 Step 4 greps the previous log for these (plus the JVM's, Python's and glibc's wording)."""

DEFAULT_REDACTION = (
    r"(?i)\b(authorization|token|secret|passw(or)?d|api[_-]?key|access[_-]?key|cookie|credentials?)"
    r"[\"']?\s*[:=]\s*[\"']?((bearer|basic)\s+)?[^\s,;\"']+"
    r"|\b(bearer|basic)\s+[a-z0-9._~+/=-]{8,}"
    r"|\beyJ[a-z0-9_-]{8,}\.[a-z0-9_-]{8,}\.[a-z0-9_-]+"
    r"|\b(AKIA|ASIA)[A-Z0-9]{16}\b"
    r"|[a-z][a-z0-9+.-]*://[^\s/:@]+:[^\s/@]+@"
)
"""Key=value secrets, bearer tokens, JWTs, AWS access key ids and passwords in URLs."""


def _check_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as e:
        raise ValueError(f"bad regular expression {value!r}: {e}") from e
    return value


Regex = Annotated[str, pydantic.AfterValidator(_check_regex)]
"""A Python regular expression, checked when the configuration is loaded."""


class PreviousLogsSettings(schemas.Frozen):
    """Runbook Step 4: the OOM-killed container's previous log, grepped for memory trouble."""

    enabled: bool = True
    """Read the previous log of the alerted container with capture_diagnostics (needs `get pods/log`)."""
    tail_lines: int = Field(2000, gt=0)
    """Last lines of the previous log that are read (the end is where the crash is)."""
    limit_bytes: int = Field(256 * 1024, gt=0)
    """Most bytes read; when the last tail_lines lines are longer, fewer lines are read so the end still is."""
    patterns: list[Regex] = Field(default_factory=lambda: list(DEFAULT_LOG_PATTERNS))
    """Regular expressions (Python syntax); a line matching any of them is kept."""
    last_matches: int = Field(5, ge=0)
    """Matching lines shown (the last ones); all are counted."""
    max_line_chars: int = Field(300, gt=0)
    """A kept line longer than this is cut (a stack trace or a JSON log line can be kilobytes)."""
    redact: Regex | None = DEFAULT_REDACTION
    """Regular expression whose matches are replaced by "[REDACTED]" in kept lines; null keeps lines as they
    are. Applied before the length cap."""


class HeapDumpRuntime(schemas.Frozen):
    """How to make a heap dump in one runtime: a command run in the container through `pods/exec`."""

    command: list[str] = Field(min_length=1)
    """argv run in the target container. `{path}` is replaced by the dump's path, `{pid}` by `pid`."""
    path: str = "/tmp/heapdump-{timestamp}.hprof"
    """Where the dump is written in the container; `{timestamp}` is replaced by the UTC time (YYYYmmddTHHMMSS)."""
    pid: str = "1"
    """The process to dump (the container's main process is usually 1)."""


def _default_runtimes() -> dict[str, HeapDumpRuntime]:
    return {
        # jcmd ships with the JDK (not with a JRE-only image); the file is written by the JVM itself.
        "jvm": HeapDumpRuntime(
            command=[
                "sh",
                "-c",
                'jcmd {pid} GC.heap_dump "{path}" >&2 && stat -c %s "{path}"',
            ],
            path="/tmp/heapdump-{timestamp}.hprof",
        ),
        # Node writes a snapshot on SIGUSR2 when started with --heapsnapshot-signal=SIGUSR2, into its cwd.
        "node": HeapDumpRuntime(
            command=[
                "sh",
                "-c",
                "kill -USR2 {pid} && sleep 10 && f=$(ls -t /proc/{pid}/cwd/*.heapsnapshot | head -n1) "
                '&& cp "$f" "{path}" && stat -c %s "{path}"',
            ],
            path="/tmp/heapdump-{timestamp}.heapsnapshot",
        ),
        # Python has no heap dump of its own: py-spy (in the image) dumps every thread's stack; a heap
        # picture needs the application's help (a tracemalloc snapshot written on a signal it handles).
        "python": HeapDumpRuntime(
            command=["sh", "-c", 'py-spy dump --pid {pid} > "{path}" && stat -c %s "{path}"'],
            path="/tmp/pystacks-{timestamp}.txt",
        ),
        # Go: the service must expose net/http/pprof on localhost:6060.
        "go": HeapDumpRuntime(
            command=[
                "sh",
                "-c",
                'wget -q -O "{path}" http://127.0.0.1:6060/debug/pprof/heap && stat -c %s "{path}"',
            ],
            path="/tmp/heap-{timestamp}.pprof",
        ),
    }


class HeapDumpSettings(schemas.Frozen):
    """Runbook Step 5: a heap dump of the leaking process, opt-in (needs `get` and `create` on `pods/exec`)."""

    enabled: bool = False
    """Allow the heap_dump action at all. Off by default: exec into workloads is a strong permission."""
    timeout_seconds: float = Field(120, gt=0)
    """How long a dump command may run before it is abandoned and reported as timed out, in seconds."""
    runtimes: dict[str, HeapDumpRuntime] = Field(default_factory=_default_runtimes)
    """Runtime name → command template. A workload chooses its runtime with the annotation
    oom-responder.io/heap-dump-runtime, or a playbook's heap_dump action names one."""
    max_output_bytes: int = Field(64 * 1024, gt=0)
    """Most bytes of the command's stdout and stderr kept (each); the rest is discarded."""


class DiagnosticsSettings(schemas.Frozen):
    previous_logs: PreviousLogsSettings = Field(default_factory=PreviousLogsSettings)
    heap_dump: HeapDumpSettings = Field(default_factory=HeapDumpSettings)
