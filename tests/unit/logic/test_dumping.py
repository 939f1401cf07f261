"""Heap dumps: choosing the command and reading its result.

Covers: off by default, the runtime named by the workload's annotation (winning) or the action, unknown
runtimes listing the configured ones, filling {path}/{pid}/{timestamp} without touching the shell's own
braces, the documented runtimes, reading exit code and size, and one notice line per outcome.
"""

from __future__ import annotations

import datetime

import pytest

from responder.logic import dumping
from responder.models import diagnostics, settings

NOW = datetime.datetime(2026, 12, 1, 12, 30, 5, tzinfo=datetime.UTC)
ON = settings.HeapDumpSettings(enabled=True)


def test_is_off_by_default() -> None:
    found = dumping.choose(annotations={}, runtime="jvm", options=settings.HeapDumpSettings(), now=NOW)
    assert found == "heap dumps are disabled (diagnostics.heap_dump.enabled: false)"


def test_the_workloads_annotation_wins_over_the_actions_runtime() -> None:
    found = dumping.choose(
        annotations={dumping.RUNTIME_ANNOTATION: "node"}, runtime="jvm", options=ON, now=NOW
    )
    assert isinstance(found, dumping.Command)
    assert found.runtime == "node"
    assert found.path == "/tmp/heapdump-20261201T123005.heapsnapshot"
    assert "kill -USR2 1" in found.argv[2]


def test_fills_the_jvm_template() -> None:
    found = dumping.choose(annotations={}, runtime="jvm", options=ON, now=NOW)
    assert isinstance(found, dumping.Command)
    assert found.argv == (
        "sh",
        "-c",
        'jcmd 1 GC.heap_dump "/tmp/heapdump-20261201T123005.hprof" >&2 && stat -c %s "/tmp/heapdump-20261201T123005.hprof"',
    )


def test_leaves_the_shells_own_braces_alone() -> None:
    options = settings.HeapDumpSettings(
        enabled=True,
        runtimes={
            "custom": settings.HeapDumpRuntime(command=["sh", "-c", 'p={pid}; echo ${p} "{path}"'], pid="7")
        },
    )
    found = dumping.choose(annotations={}, runtime="custom", options=options, now=NOW)
    assert isinstance(found, dumping.Command)
    assert found.argv[2] == 'p=7; echo ${p} "/tmp/heapdump-20261201T123005.hprof"'


def test_says_when_no_runtime_is_named_or_known() -> None:
    assert "annotate the workload with oom-responder.io/heap-dump-runtime" in str(
        dumping.choose(annotations={}, runtime=None, options=ON, now=NOW)
    )
    assert dumping.choose(annotations={}, runtime="erlang", options=ON, now=NOW) == (
        "unknown heap-dump runtime 'erlang' (configured: go, jvm, node, python)"
    )


def test_documents_node_jvm_python_and_go() -> None:
    assert set(settings.HeapDumpSettings().runtimes) == {"jvm", "node", "python", "go"}


def command() -> dumping.Command:
    found = dumping.choose(annotations={}, runtime="jvm", options=ON, now=NOW)
    assert isinstance(found, dumping.Command)
    return found


def test_reads_the_size_from_the_last_line_of_output() -> None:
    result = diagnostics.ExecResult(
        outcome=diagnostics.ExecOutcome.SUCCEEDED, exit_code=0, stdout=b"Dumping heap\n52428800\n"
    )
    dump = dumping.interpret(result, command=command(), pod="web-1", container="app")
    assert (dump.size_bytes, dump.exit_code, dump.path) == (
        52428800,
        0,
        "/tmp/heapdump-20261201T123005.hprof",
    )
    assert dumping.describe(dump, timeout_seconds=60) == (
        "heap dump (jvm) written in web-1/app to /tmp/heapdump-20261201T123005.hprof (50.0 MiB, exit 0); "
        "copy it with kubectl cp before the container restarts"
    )


def test_claims_no_size_for_a_failed_dump() -> None:
    result = diagnostics.ExecResult(
        outcome=diagnostics.ExecOutcome.NON_ZERO_EXIT,
        exit_code=1,
        stdout=b"123\n",
        stderr=b"1: Unable to open socket file\n",
    )
    dump = dumping.interpret(result, command=command(), pod="web-1", container="app")
    assert dump.size_bytes is None
    assert dumping.describe(dump, timeout_seconds=60) == (
        "heap dump (jvm) failed in web-1/app: exit 1: 1: Unable to open socket file"
    )


@pytest.mark.parametrize(
    ("outcome", "message", "expected"),
    [
        pytest.param(
            diagnostics.ExecOutcome.COMMAND_MISSING,
            'exec: "jcmd": executable file not found in $PATH',
            "impossible in web-1/app: the command is missing in the image",
            id="missing",
        ),
        pytest.param(
            diagnostics.ExecOutcome.FORBIDDEN,
            "403: the service account may not create pods/exec in shop",
            "refused in web-1/app: exec is not allowed (pods/exec get and create",
            id="forbidden",
        ),
        pytest.param(
            diagnostics.ExecOutcome.TIMED_OUT, "no end within 60s", "did not finish within 60s", id="timeout"
        ),
        pytest.param(
            diagnostics.ExecOutcome.FAILED, "stream broke", "failed in web-1/app: stream broke", id="failed"
        ),
    ],
)
def test_every_failure_is_one_clear_line(
    outcome: diagnostics.ExecOutcome, message: str, expected: str
) -> None:
    dump = dumping.interpret(
        diagnostics.ExecResult(outcome=outcome, message=message),
        command=command(),
        pod="web-1",
        container="app",
    )
    line = dumping.describe(dump, timeout_seconds=60)
    assert expected in line
    assert "\n" not in line
