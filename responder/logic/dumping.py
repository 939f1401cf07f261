"""Heap dumps (runbook RB-010 Step 5): which command to run in the container, and what its result means.

Stage: investigate (pure). Chooses the runtime's command template (the workload's annotation, else the
playbook's option), fills in the dump's path and the process id, and reads the result of the `pods/exec`
stream back as a line for the notice: exit code, where the dump was written, its size. It runs nothing.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping

from responder.models import diagnostics, settings

__all__ = ["RUNTIME_ANNOTATION", "Command", "choose", "describe", "interpret"]

RUNTIME_ANNOTATION = "oom-responder.io/heap-dump-runtime"
"""On the workload: the name of its runtime in `diagnostics.heap_dump.runtimes` (jvm, node, python, go)."""

_DETAIL_CHARS = 300


@dataclasses.dataclass(frozen=True, slots=True)
class Command:
    runtime: str
    argv: tuple[str, ...]
    path: str


def _fill(template: str, values: Mapping[str, str]) -> str:
    # str.replace, not str.format: shell snippets in templates carry braces of their own (${var}, awk).
    for key, value in values.items():
        template = template.replace("{" + key + "}", value)
    return template


def choose(
    *,
    annotations: Mapping[str, str],
    runtime: str | None,
    options: settings.HeapDumpSettings,
    now: datetime.datetime,
) -> Command | str:
    """The command to run, or a line saying why none can be (disabled, no runtime named, unknown runtime)."""
    if not options.enabled:
        return "heap dumps are disabled (diagnostics.heap_dump.enabled: false)"
    name = (annotations.get(RUNTIME_ANNOTATION) or runtime or "").strip()
    if not name:
        return (
            f"no runtime named: annotate the workload with {RUNTIME_ANNOTATION} or set the action's runtime"
        )
    template = options.runtimes.get(name)
    if template is None:
        known = ", ".join(sorted(options.runtimes)) or "none"
        return f"unknown heap-dump runtime {name!r} (configured: {known})"
    stamp = now.astimezone(datetime.UTC).strftime("%Y%m%dT%H%M%S")
    path = _fill(template.path, {"timestamp": stamp, "pid": template.pid})
    values = {"path": path, "pid": template.pid, "timestamp": stamp}
    return Command(runtime=name, argv=tuple(_fill(arg, values) for arg in template.command), path=path)


def _size(stdout: bytes) -> int | None:
    lines = stdout.decode("utf-8", "replace").strip().splitlines()
    if not lines:
        return None
    last = lines[-1].strip()
    return int(last) if last.isdigit() else None


def _tail(raw: bytes) -> str:
    text = " ".join(raw.decode("utf-8", "replace").split())
    return text if len(text) <= _DETAIL_CHARS else "…" + text[-(_DETAIL_CHARS - 1) :]


def interpret(
    result: diagnostics.ExecResult, *, command: Command, pod: str, container: str
) -> diagnostics.HeapDump:
    """The heap dump as the notice shows it. A dump is only claimed when the command exited 0."""
    outcome = result.outcome
    detail = _tail(result.stderr) or result.message
    if outcome is diagnostics.ExecOutcome.FORBIDDEN:
        detail = result.message or "403 Forbidden"
    return diagnostics.HeapDump(
        runtime=command.runtime,
        pod=pod,
        container=container,
        path=command.path,
        outcome=outcome,
        exit_code=result.exit_code,
        size_bytes=_size(result.stdout) if outcome is diagnostics.ExecOutcome.SUCCEEDED else None,
        detail=detail[:_DETAIL_CHARS],
    )


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def describe(dump: diagnostics.HeapDump, *, timeout_seconds: float) -> str:
    """One line for the notice."""
    where = f"{dump.pod}/{dump.container}"
    outcome = dump.outcome
    if outcome is diagnostics.ExecOutcome.SUCCEEDED:
        size = _human(dump.size_bytes) if dump.size_bytes is not None else "size unknown"
        return (
            f"heap dump ({dump.runtime}) written in {where} to {dump.path} ({size}, exit 0); copy it with "
            f"kubectl cp before the container restarts"
        )
    if outcome is diagnostics.ExecOutcome.NON_ZERO_EXIT:
        return f"heap dump ({dump.runtime}) failed in {where}: exit {dump.exit_code}: {dump.detail or 'no output'}"
    if outcome is diagnostics.ExecOutcome.COMMAND_MISSING:
        return f"heap dump ({dump.runtime}) impossible in {where}: the command is missing in the image: {dump.detail}"
    if outcome is diagnostics.ExecOutcome.FORBIDDEN:
        return (
            f"heap dump ({dump.runtime}) refused in {where}: exec is not allowed (pods/exec get and create; chart "
            f"value diagnostics.heapDump.enabled): {dump.detail}"
        )
    if outcome is diagnostics.ExecOutcome.TIMED_OUT:
        return (
            f"heap dump ({dump.runtime}) in {where} did not finish within {timeout_seconds:g}s; it may still "
            f"be written to {dump.path}"
        )
    return f"heap dump ({dump.runtime}) failed in {where}: {dump.detail or 'exec failed'}"
