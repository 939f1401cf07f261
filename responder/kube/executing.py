"""Running one command in a container through `pods/exec` (runbook RB-010 Step 5: heap dumps).

Stage: kube edge. Speaks the Kubernetes streaming protocol over a websocket, as kubectl does since 1.30:
subprotocol `v5.channel.k8s.io` (or `v4.channel.k8s.io` from an older API server); every binary frame starts
with its channel byte (1 stdout, 2 stderr, 3 the final `Status` as JSON). No stdin, no TTY. The whole
exchange has one timeout. Outputs are kept up to a bound. Every failure (403, the pod gone, the command
missing from the image, a timeout) becomes an `ExecResult`, never an exception: a heap dump that cannot be
made is a line in the notice, never a failed mitigation. It decides nothing about incidents.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import urllib.parse
from collections.abc import Sequence
from typing import Any

import aiohttp

from responder.kube import client
from responder.models import diagnostics

__all__ = ["PROTOCOLS", "exec_in_container", "read_status"]

logger = logging.getLogger(__name__)

PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
"""Preferred first. v5 adds a close signal for stdin, which a command without stdin never needs."""

_STDOUT, _STDERR, _ERROR = 1, 2, 3
_EXIT_IN_MESSAGE = re.compile(r"exit (?:status|code):? (\d+)\s*$")
_MISSING = ("executable file not found", "no such file or directory", "not found in $path")


def read_status(raw: bytes) -> tuple[diagnostics.ExecOutcome, int | None, str]:
    """The outcome, exit code and message of the error channel's `Status` (v4+: JSON)."""
    try:
        status = json.loads(raw.decode("utf-8", "replace")) if raw.strip() else {}
    except ValueError:
        return diagnostics.ExecOutcome.FAILED, None, raw.decode("utf-8", "replace")[:500]
    if not isinstance(status, dict):
        return diagnostics.ExecOutcome.FAILED, None, str(status)[:500]
    message = str(status.get("message") or "")[:500]
    if status.get("status") == "Success":
        return diagnostics.ExecOutcome.SUCCEEDED, 0, message
    if status.get("reason") == "NonZeroExitCode":
        causes = (status.get("details") or {}).get("causes") or []
        code = next(
            (
                int(c["message"])
                for c in causes
                if c.get("reason") == "ExitCode" and str(c.get("message")).isdigit()
            ),
            None,
        )
        # 127 is a shell's "command not found" (the templates run through sh -c); 126 "not executable".
        if code in (126, 127):
            return diagnostics.ExecOutcome.COMMAND_MISSING, code, message
        return diagnostics.ExecOutcome.NON_ZERO_EXIT, code, message
    if any(marker in message.lower() for marker in _MISSING):
        return diagnostics.ExecOutcome.COMMAND_MISSING, None, message
    # Some streaming servers (kwok's, older runtimes) report the exit only in the message, as Go's
    # exec.ExitError prints it: "... exit status 3".
    found = _EXIT_IN_MESSAGE.search(message)
    if found:
        code = int(found.group(1))
        if code in (126, 127):
            return diagnostics.ExecOutcome.COMMAND_MISSING, code, message
        return diagnostics.ExecOutcome.NON_ZERO_EXIT, code, message
    return diagnostics.ExecOutcome.FAILED, None, message or "exec failed"


def _path(namespace: str, pod: str) -> str:
    return (
        f"/api/v1/namespaces/{urllib.parse.quote(namespace, safe='')}"
        f"/pods/{urllib.parse.quote(pod, safe='')}/exec"
    )


class _Collected:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.status: bytes | None = None

    def take(self, frame: bytes) -> None:
        if len(frame) < 2:
            return  # v1-v4 servers open each channel with a frame holding only its number
        channel, data = frame[0], frame[1:]
        if channel == _STDOUT:
            self.stdout += data[: max(0, self.limit - len(self.stdout))]
        elif channel == _STDERR:
            self.stderr += data[: max(0, self.limit - len(self.stderr))]
        elif channel == _ERROR:
            self.status = (self.status or b"") + data


async def _stream(ws: Any, collected: _Collected) -> None:
    async for message in ws:
        if message.type == aiohttp.WSMsgType.BINARY:
            collected.take(message.data)
        elif message.type == aiohttp.WSMsgType.TEXT:
            # base64 subprotocols are never offered, but a server sending text anyway is not a crash.
            collected.take(message.data.encode())
        elif message.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE):
            break


async def exec_in_container(
    kube: client.Kube,
    *,
    namespace: str,
    pod: str,
    container: str,
    command: Sequence[str],
    timeout_seconds: float,
    max_output_bytes: int,
) -> diagnostics.ExecResult:
    """Run `command` in the container and wait for its end (or the timeout)."""
    query = [("command", arg) for arg in command]
    query += [("container", container), ("stdout", "true"), ("stderr", "true")]
    collected = _Collected(max_output_bytes)
    protocol = ""
    path = _path(namespace, pod)
    try:
        async with asyncio.timeout(timeout_seconds):
            connecting = await kube.open_stream(path, query=query, protocols=PROTOCOLS)
            async with connecting as ws:
                kube.metrics.kube_requests.labels(verb="create", resource="pods/exec", code="101").inc()
                protocol = ws.protocol or ""
                await _stream(ws, collected)
    except client.StreamingUnsupported as e:
        return diagnostics.ExecResult(outcome=diagnostics.ExecOutcome.FAILED, message=str(e))
    except aiohttp.WSServerHandshakeError as e:
        kube.metrics.kube_requests.labels(verb="create", resource="pods/exec", code=str(e.status)).inc()
        outcome = diagnostics.ExecOutcome.FORBIDDEN if e.status == 403 else diagnostics.ExecOutcome.FAILED
        what = {
            401: "the API server did not accept the credentials",
            # The websocket upgrade is a GET that the API server (>= 1.35) also authorizes as create.
            403: f"the service account may not get and create pods/exec in {namespace}",
            404: "the pod is gone",
            400: "the API server refused the request (is the container running?)",
        }.get(e.status, "the API server refused the stream")
        return diagnostics.ExecResult(outcome=outcome, message=f"{e.status}: {what}")
    except TimeoutError:
        return diagnostics.ExecResult(
            outcome=diagnostics.ExecOutcome.TIMED_OUT,
            stdout=bytes(collected.stdout),
            stderr=bytes(collected.stderr),
            message=f"no end within {timeout_seconds:g}s",
            protocol=protocol,
        )
    except aiohttp.ClientError as e:
        kube.metrics.kube_requests.labels(verb="create", resource="pods/exec", code="0").inc()
        return diagnostics.ExecResult(
            outcome=diagnostics.ExecOutcome.FAILED,
            message=f"{type(e).__name__}: {e}"[:500],
            protocol=protocol,
        )
    if collected.status is None:
        outcome, code, message = diagnostics.ExecOutcome.FAILED, None, "the stream ended without a status"
    else:
        outcome, code, message = read_status(collected.status)
    logger.info("exec in %s/%s/%s: %s (exit %s)", namespace, pod, container, outcome.value, code)
    return diagnostics.ExecResult(
        outcome=outcome,
        exit_code=code,
        stdout=bytes(collected.stdout),
        stderr=bytes(collected.stderr),
        message=message,
        protocol=protocol,
    )
