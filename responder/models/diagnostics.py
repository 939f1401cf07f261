"""What the diagnostics of runbook RB-010 Steps 4–5 found, and the silences kept while a mitigation works.

Data only: a previous-log excerpt, the result of a command run in a container (`pods/exec`), a heap dump's
result, and an Alertmanager silence. The edges (`responder.kube.podlogs`, `responder.kube.executing`,
`responder.notifiers.silences`) fill them in; `responder.logic.excerpting`, `.dumping` and `.silencing`
decide from them. Nothing here reads or writes anything.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum

__all__ = [
    "ExecOutcome",
    "ExecResult",
    "HeapDump",
    "LogExcerpt",
    "Silence",
    "SilenceMatcher",
]


@dataclasses.dataclass(frozen=True, slots=True)
class LogExcerpt:
    """The lines of a container's previous log that matched the configured patterns."""

    container: str
    lines_scanned: int = 0
    bytes_read: int = 0
    matches_total: int = 0
    last_matches: tuple[str, ...] = ()
    """The last matching lines, redacted and length-capped, oldest first."""
    narrowed_to_lines: int | None = None
    """Set when the last `tail_lines` lines were larger than `limit_bytes`: only this many were read."""
    problem: str | None = None
    """Why there is no excerpt (no previous log, refused, unreachable), as a line for the notice."""


class ExecOutcome(enum.StrEnum):
    """How a command run through `pods/exec` ended."""

    SUCCEEDED = "succeeded"
    NON_ZERO_EXIT = "non_zero_exit"
    COMMAND_MISSING = "command_missing"
    """The executable is not in the image (the runtime's "executable file not found", or a shell's 127)."""
    FORBIDDEN = "forbidden"
    """403: the service account may not `create pods/exec` there."""
    TIMED_OUT = "timed_out"
    FAILED = "failed"
    """The API server or the kubelet refused or broke off (the message says which)."""


@dataclasses.dataclass(frozen=True, slots=True)
class ExecResult:
    outcome: ExecOutcome
    exit_code: int | None = None
    stdout: bytes = b""
    stderr: bytes = b""
    message: str = ""
    """The Status message of the error channel, or the error that ended the stream."""
    protocol: str = ""
    """The streaming subprotocol the server chose (v5.channel.k8s.io, v4.channel.k8s.io)."""


@dataclasses.dataclass(frozen=True, slots=True)
class HeapDump:
    """The result of one heap_dump action, as the notice shows it."""

    runtime: str
    pod: str
    container: str
    path: str
    outcome: ExecOutcome
    exit_code: int | None = None
    size_bytes: int | None = None
    """From the command's last stdout line (the documented templates print the file's size there)."""
    detail: str = ""
    """stderr tail or the error message, already cut to a line."""


@dataclasses.dataclass(frozen=True, slots=True)
class SilenceMatcher:
    """One matcher of an Alertmanager v2 silence."""

    name: str
    value: str
    is_regex: bool = False
    is_equal: bool = True


@dataclasses.dataclass(frozen=True, slots=True)
class Silence:
    """A silence to create (id empty) or one Alertmanager holds."""

    matchers: tuple[SilenceMatcher, ...]
    starts_at: datetime.datetime
    ends_at: datetime.datetime
    created_by: str
    comment: str
    id: str = ""
    state: str = ""
    """Alertmanager's status.state: pending, active or expired (empty for one not yet created)."""
