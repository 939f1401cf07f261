"""`oom-responder analyze --prometheus URL` against a real, backfilled Prometheus.

Aspects covered: a workload named by KIND/NAME is read over HTTP and analysed, as JSON and as text; a
Prometheus that is not there still prints an analysis (insufficient_data, with the reason), exit 0.
"""

from __future__ import annotations

import json
import socket

import pytest

from responder import cli
from tests.promstack import scenarios
from tests.promstack.plugin import Backfilled

pytestmark = pytest.mark.prometheus


def test_analyses_a_live_workload_as_json(promstack: Backfilled, capsys: pytest.CaptureFixture[str]) -> None:
    # The command's window ends now; the backfilled day ends at promstack.end, a minute or so earlier.
    argv = [
        "analyze",
        "--prometheus",
        promstack.url,
        "-n",
        scenarios.NAMESPACE,
        "--workload",
        "deployment/linear-api",
    ]
    assert cli.main([*argv, "--output", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["pattern"] == "linear_leak"
    assert doc["slope_bytes_per_hour"] == pytest.approx(10 * 2**20, rel=0.1)
    assert doc["limit_bytes"] == 1024 * 2**20
    assert doc["time_to_oom_seconds"] > 0
    assert doc["recommended_limit_bytes"] is not None


def test_analyses_a_spike_as_text(promstack: Backfilled, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "analyze",
        "--prometheus",
        promstack.url,
        "-n",
        scenarios.NAMESPACE,
        "--workload",
        "deployment/spike-batch",
    ]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "pattern: spike" in out
    assert "recommended limit:" in out


def test_an_absent_prometheus_is_insufficient_data(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    argv = [
        "analyze",
        "--prometheus",
        f"http://127.0.0.1:{port}",
        "-n",
        "a",
        "--workload",
        "statefulset/db",
        "-o",
        "json",
    ]
    assert cli.main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["pattern"] == "insufficient_data"
    assert doc["reason"].startswith("Prometheus unreachable")
