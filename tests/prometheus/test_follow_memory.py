"""Verdicts read memory from the real Prometheus (backfilled history), and judge it against Step 6.

Aspects covered:
* a leaking workload reads as rising with its pattern and time to OOM, and its verdict is still_leaking with
  Prometheus named as the evidence;
* a flat workload reads its peak as % of the limit, and its verdict is stable, the peak said;
* an unreachable Prometheus reads as nothing: the verdict rests on the pod state and says so.
"""

from __future__ import annotations

import datetime
import socket
from typing import Any

import pytest

from responder import metrics as metrics_mod
from responder.engine import measuring
from responder.logic import following, verdicts
from responder.models import follow_ups, settings, targets
from tests.promstack import scenarios
from tests.promstack.plugin import Backfilled

pytestmark = pytest.mark.prometheus

WORKLOAD: dict[str, Any] = {"metadata": {"name": "w"}, "spec": {"replicas": 2}}
POD: dict[str, Any] = {
    "metadata": {"uid": "p", "name": "p"},
    "status": {"containerStatuses": [{"name": "app", "restartCount": 0}]},
}


def memory_reader(url: str) -> measuring.PrometheusMemory:
    config = settings.PrometheusSettings(url=url, timeout_seconds=10)
    return measuring.PrometheusMemory(config, authorization=None, metrics=metrics_mod.Metrics())


def verdict_with(reading: follow_ups.MemoryReading | None, *, until: datetime.datetime) -> follow_ups.Verdict:
    acted = until - datetime.timedelta(hours=6)
    record = follow_ups.FollowUp(
        kind=targets.WorkloadKind.DEPLOYMENT,
        namespace=scenarios.NAMESPACE,
        name="w",
        incident="i",
        playbook="p",
        action=settings.Action.RAISE_MEMORY,
        acted_at=acted,
        horizons=following.horizons(acted_at=acted, horizons_seconds=[6 * 3600]),
        restarts={"p/app": 0},
    )
    verdict, _ = verdicts.judge(
        record=record,
        horizon=record.horizons[0],
        workload=WORKLOAD,
        pods=[POD],
        memory=reading,
        config=settings.FollowUpSettings(),
        now=until,
    )
    return verdict


async def read(promstack_url: str, name: str, *, until: datetime.datetime) -> follow_ups.MemoryReading | None:
    reader = memory_reader(promstack_url)
    try:
        return await reader.read(
            target=targets.Target(targets.WorkloadKind.DEPLOYMENT, scenarios.NAMESPACE, name),
            container="app",
            since=until - datetime.timedelta(hours=6),
            until=until,
        )
    finally:
        await reader.close()


async def test_a_leak_reads_as_rising_and_its_verdict_is_still_leaking(promstack: Backfilled) -> None:
    until = datetime.datetime.fromtimestamp(promstack.end, datetime.UTC)
    reading = await read(promstack.url, "linear-api", until=until)
    assert reading is not None
    assert reading.rising and reading.pattern == "linear_leak"
    assert reading.time_to_oom_seconds is not None and reading.time_to_oom_seconds > 0
    assert reading.peak_percent_of_limit is not None and 40 < reading.peak_percent_of_limit < 100
    verdict = verdict_with(reading, until=until)
    assert verdict.kind is follow_ups.VerdictKind.STILL_LEAKING
    assert verdict.evidence is follow_ups.Evidence.PROMETHEUS
    assert "still rising (linear_leak)" in verdict.detail and "OOM expected in about" in verdict.detail


async def test_a_flat_workload_reads_its_peak_and_its_verdict_is_stable(promstack: Backfilled) -> None:
    until = datetime.datetime.fromtimestamp(promstack.end, datetime.UTC)
    reading = await read(promstack.url, "stable-web", until=until)
    assert reading is not None and not reading.rising
    assert reading.peak_percent_of_limit is not None and reading.peak_percent_of_limit < 80
    verdict = verdict_with(reading, until=until)
    assert verdict.kind is follow_ups.VerdictKind.STABLE
    assert f"peak {reading.peak_percent_of_limit:.0f} % of the limit" in verdict.detail


async def test_an_unreachable_prometheus_leaves_the_verdict_on_the_pod_state() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once closed
    until = datetime.datetime.now(datetime.UTC)
    reading = await read(f"http://127.0.0.1:{port}", "stable-web", until=until)
    assert reading is None
    verdict = verdict_with(reading, until=until)
    assert verdict.evidence is follow_ups.Evidence.POD_STATE and "no Prometheus" in verdict.detail
