"""Reading the `Status` that ends a `pods/exec` stream (channel 3 of the v4/v5 streaming protocol).

Covers: success, a non-zero exit with its code, a shell's 127/126 as a missing command, the container
runtime's "executable file not found", an unreadable status. The stream itself is tested against the real
API server and kwok's kubelet endpoint in tests/integration/diagnostics.
"""

from __future__ import annotations

import json

import pytest

from responder.kube import executing
from responder.models import diagnostics

Outcome = diagnostics.ExecOutcome


def failure(code: int) -> bytes:
    return json.dumps(
        {
            "metadata": {},
            "status": "Failure",
            "message": f"command terminated with non-zero exit code: exit status {code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
        }
    ).encode()


@pytest.mark.parametrize(
    ("raw", "outcome", "code"),
    [
        pytest.param(b'{"metadata":{},"status":"Success"}', Outcome.SUCCEEDED, 0, id="success"),
        pytest.param(failure(3), Outcome.NON_ZERO_EXIT, 3, id="exit-3"),
        pytest.param(failure(127), Outcome.COMMAND_MISSING, 127, id="shell-not-found"),
        pytest.param(failure(126), Outcome.COMMAND_MISSING, 126, id="shell-not-executable"),
        pytest.param(
            json.dumps(
                {
                    "status": "Failure",
                    "message": 'OCI runtime exec failed: exec failed: unable to start container process: exec: "jcmd": executable file not found in $PATH: unknown',
                    "reason": "InternalError",
                }
            ).encode(),
            Outcome.COMMAND_MISSING,
            None,
            id="runtime-not-found",
        ),
        pytest.param(
            b'{"status":"Failure","message":"container not running"}', Outcome.FAILED, None, id="other"
        ),
        pytest.param(b"not json", Outcome.FAILED, None, id="garbage"),
    ],
)
def test_reads_the_status(raw: bytes, outcome: Outcome, code: int | None) -> None:
    found, exit_code, message = executing.read_status(raw)
    assert (found, exit_code) == (outcome, code)
    assert len(message) <= 500


def test_offers_v5_before_v4() -> None:
    assert executing.PROTOCOLS == ("v5.channel.k8s.io", "v4.channel.k8s.io")


def test_reads_an_exit_code_given_only_in_the_message() -> None:
    raw = b'{"status":"Failure","reason":"InternalError","message":"Internal error occurred: error executing command in container: cmd wait: sh -c exit 3: exit status 3"}'
    assert executing.read_status(raw)[:2] == (Outcome.NON_ZERO_EXIT, 3)
    shell = raw.replace(b"exit 3: exit status 3", b"nope: exit status 127")
    assert executing.read_status(shell)[:2] == (Outcome.COMMAND_MISSING, 127)
