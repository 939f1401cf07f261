"""The Prometheus reader against a real Prometheus over a backfilled day (`responder/prometheus/reading.py`).

Aspects covered:
* every scenario workload (linear, sawtooth, accelerating, spike, stable, a StatefulSet with OOM restarts and
  scrape gaps, a pod replaced by a rollout) is read and named as expected;
* the whole workload is read: replaced pods included, a workload sharing the name's prefix excluded;
  restarts come from kube-state-metrics' counter, the limit from its limits series, RSS is read;
* one container only, when asked;
* failures become `insufficient_data` with the reason, never an exception: a query Prometheus refuses (400),
  nothing listening, a Prometheus that stops answering (timeout), an answer too big, no series at all;
  optional queries failing only add a note;
* metrics: requests by query and code, analyses by pattern, analysis duration.
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from responder import metrics as metrics_mod
from responder.models import settings
from responder.models.analyses import Pattern
from responder.prometheus import reading
from tests.promstack import scenarios
from tests.promstack.plugin import Backfilled
from tests.promstack.stack import PromStack, Series

pytestmark = pytest.mark.prometheus


def _reader(url: str, **overrides: Any) -> tuple[reading.Reader, metrics_mod.Metrics]:
    metrics = metrics_mod.Metrics(CollectorRegistry())
    config = settings.PrometheusSettings(url=url, **overrides)
    return reading.Reader(config, metrics=metrics), metrics


@pytest.mark.parametrize("name", [n for n in scenarios.SCENARIOS])
async def test_each_scenario_is_read_and_named(promstack: Backfilled, name: str) -> None:
    scenario = promstack.scenarios[name]
    reader, metrics = _reader(promstack.url)
    try:
        result = await reading.investigate(
            reader, namespace=scenarios.NAMESPACE, kind=scenario.kind, name=name, now=promstack.end
        )
    finally:
        await reader.close()
    assert result.pattern.value == scenario.expected, result.reason
    assert result.limit_bytes == scenario.limit_bytes
    assert (
        metrics.registry.get_sample_value("oom_responder_analyses_total", {"pattern": scenario.expected})
        == 1.0
    )
    assert (
        metrics.registry.get_sample_value(
            "oom_responder_prometheus_requests_total", {"query": "working_set", "code": "200"}
        )
        == 1.0
    )
    assert metrics.registry.get_sample_value("oom_responder_analysis_duration_seconds_count") == 1.0


async def test_reads_replaced_pods_and_not_a_workload_sharing_the_prefix(promstack: Backfilled) -> None:
    reader, _ = _reader(promstack.url)
    try:
        replaced = await reader.read_workload(
            namespace=scenarios.NAMESPACE, kind="Deployment", name="replaced-api", now=promstack.end
        )
        linear = await reader.read_workload(
            namespace=scenarios.NAMESPACE, kind="Deployment", name="linear-api", now=promstack.end
        )
    finally:
        await reader.close()
    assert sorted(s.pod for s in replaced.series) == [
        "replaced-api-6f5d4c3b2-old01",
        "replaced-api-8a7b6c5d4-new01",
    ]
    assert sorted(s.pod for s in linear.series) == [
        "linear-api-7d9f8b6c5d-p8k2n",
        "linear-api-7d9f8b6c5d-x2x4q",
    ]
    assert linear.rss_share == pytest.approx(0.9, rel=0.05)
    assert linear.problem is None and linear.notes == ()


async def test_restarts_come_from_the_counter(promstack: Backfilled) -> None:
    reader, _ = _reader(promstack.url)
    try:
        history = await reader.read_workload(
            namespace=scenarios.NAMESPACE, kind="StatefulSet", name="gappy-cache", now=promstack.end
        )
        result = await reading.investigate(
            reader, namespace=scenarios.NAMESPACE, kind="StatefulSet", name="gappy-cache", now=promstack.end
        )
    finally:
        await reader.close()
    (series,) = history.series
    assert len(series.restarts) == 3
    assert sum(lt.ended_by_restart for lt in result.lifetimes) >= 3
    assert result.time_to_oom_seconds is not None


async def test_one_container_only_when_asked(promstack: Backfilled) -> None:
    reader, _ = _reader(promstack.url)
    try:
        other = await reader.read_workload(
            namespace=scenarios.NAMESPACE,
            kind="Deployment",
            name="linear-api",
            container="sidecar",
            now=promstack.end,
        )
        app = await reader.read_workload(
            namespace=scenarios.NAMESPACE,
            kind="Deployment",
            name="linear-api",
            container="app",
            now=promstack.end,
        )
    finally:
        await reader.close()
    assert other.series == []
    assert len(app.series) == 2


async def test_no_series_is_insufficient_data(promstack: Backfilled) -> None:
    reader, _ = _reader(promstack.url)
    try:
        result = await reading.investigate(
            reader, namespace=scenarios.NAMESPACE, kind="Deployment", name="absent", now=promstack.end
        )
    finally:
        await reader.close()
    assert result.pattern is Pattern.INSUFFICIENT_DATA
    assert "no memory series" in result.reason


async def test_a_refused_query_is_the_reason(promstack: Backfilled) -> None:
    queries = settings.PrometheusQueries(working_set="max by (pod (", rss=None, limit=None, restarts=None)
    reader, metrics = _reader(promstack.url, queries=queries)
    try:
        result = await reading.investigate(
            reader, namespace=scenarios.NAMESPACE, kind="Deployment", name="linear-api", now=promstack.end
        )
    finally:
        await reader.close()
    assert result.pattern is Pattern.INSUFFICIENT_DATA
    assert result.reason.startswith("Prometheus answered 400 to the working_set query: bad_data")
    assert (
        metrics.registry.get_sample_value(
            "oom_responder_prometheus_requests_total", {"query": "working_set", "code": "400"}
        )
        == 1.0
    )


async def test_an_optional_query_failing_is_a_note(promstack: Backfilled) -> None:
    queries = settings.PrometheusQueries(restarts="rate(", rss=None)
    reader, _ = _reader(promstack.url, queries=queries)
    try:
        result = await reading.investigate(
            reader, namespace=scenarios.NAMESPACE, kind="Deployment", name="linear-api", now=promstack.end
        )
    finally:
        await reader.close()
    assert result.pattern is Pattern.LINEAR_LEAK
    assert any(n.startswith("restarts not read: Prometheus answered 400") for n in result.notes)


async def test_a_too_big_answer_is_refused(promstack: Backfilled) -> None:
    reader, _ = _reader(promstack.url, max_response_bytes=10_000)
    try:
        history = await reader.read_workload(
            namespace=scenarios.NAMESPACE, kind="Deployment", name="linear-api", now=promstack.end
        )
    finally:
        await reader.close()
    assert history.problem == "Prometheus' answer is larger than 10000 bytes"


async def test_nothing_listening_is_the_reason() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    reader, metrics = _reader(f"http://127.0.0.1:{port}")
    try:
        result = await reading.investigate(
            reader, namespace="a", kind="Deployment", name="b", now=1_700_000_000.0
        )
    finally:
        await reader.close()
    assert result.pattern is Pattern.INSUFFICIENT_DATA
    assert result.reason.startswith(f"Prometheus unreachable at http://127.0.0.1:{port}")
    assert (
        metrics.registry.get_sample_value(
            "oom_responder_prometheus_requests_total", {"query": "working_set", "code": "0"}
        )
        == 1.0
    )


async def test_a_prometheus_that_stops_answering_times_out(
    start_prometheus: Callable[[Iterable[Series]], PromStack],
) -> None:
    stack = start_prometheus([Series("up", {"job": "x"}, [(1_700_000_000.0, 1.0)])])
    # A stopped process keeps its socket open: connections are accepted by the kernel, never answered.
    os.kill(stack.process.pid, signal.SIGSTOP)
    reader, metrics = _reader(stack.url, timeout_seconds=0.5)
    try:
        result = await reading.investigate(
            reader, namespace="a", kind="Deployment", name="b", now=1_700_000_000.0
        )
    finally:
        await reader.close()
        os.kill(stack.process.pid, signal.SIGCONT)
    assert result.pattern is Pattern.INSUFFICIENT_DATA
    assert result.reason == "Prometheus did not answer within 0.5 s"
    assert (
        metrics.registry.get_sample_value(
            "oom_responder_prometheus_requests_total", {"query": "working_set", "code": "0"}
        )
        == 1.0
    )
