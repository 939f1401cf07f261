"""Alert → memory analysis → a mitigation chosen by pattern, on the real control plane with a real Prometheus.

Aspects covered:
* a spike in the pod's history routes an OOMKilled alert to a playbook restricted to `pattern: [spike]`
  (scale out), and the notice, the Event and the ledger say so;
* a leak routes it to the leak playbook, whose raise says how many hours the new limit buys;
* a stable history and a Prometheus that is not there both leave the alert to the playbook without a
  pattern (the raise of today): the analysis never blocks a mitigation.

Prometheus is Debian's binary over a TSDB backfilled (tests/promstack) with a day of history under the
names of the pods the control plane really created.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from kubernetes_asyncio import client

from responder.models import notices
from responder.models.analyses import Pattern
from tests.integration.mitigations.conftest import Responder
from tests.integration.mitigations.readback import ledger_of, memory_limit, oom_labels, read_deployment
from tests.kubeplane import incidents
from tests.promstack.stack import PromStack, Series

pytestmark = [pytest.mark.integration, pytest.mark.prometheus]

MI = 2**20

PLAYBOOKS: list[dict[str, Any]] = [
    {
        "name": "oom-spike",
        "alerts": ["oom_killed"],
        "pattern": ["spike"],
        "actions": [{"scale_out": {"step": "+1"}}],
    },
    {
        "name": "oom-leak",
        "alerts": ["oom_killed"],
        "pattern": ["linear_leak", "sawtooth_leak"],
        "actions": [{"raise_memory": {}}, {"escalate": {}}],
    },
    {"name": "oom-raise-memory", "alerts": ["oom_killed"], "actions": [{"raise_memory": {}}]},
]


def _history(namespace: str, pod: str, shape: Callable[[float], float]) -> list[Series]:
    end = float(int(time.time() // 60 * 60) - 60)
    times = [end - 86400 + 60 * i for i in range(1441)]
    labels = {"namespace": namespace, "pod": pod, "container": "app"}
    return [
        Series(
            "container_memory_working_set_bytes",
            {**labels, "image": "test"},
            [(t, shape((t - times[0]) / 3600)) for t in times],
        ),
        Series(
            "kube_pod_container_resource_limits",
            {**labels, "resource": "memory"},
            [(t, 128.0 * MI) for t in times],
        ),
    ]


def _noise(hours: float) -> float:
    return MI * ((hours * 7919) % 1.0)


async def _events(kube_api: client.ApiClient, namespace: str) -> list[dict[str, Any]]:
    answer = await client.EventsV1Api(kube_api).list_namespaced_event(namespace, _preload_content=False)
    items: list[dict[str, Any]] = json.loads(await answer.read())["items"]
    return [e for e in items if e.get("reportingController") == "oom-responder"]


async def test_a_spike_is_scaled_out_instead_of_raised(
    kube_api: client.ApiClient,
    namespace: str,
    responder_factory: Any,
    start_prometheus: Callable[[Iterable[Series]], PromStack],
) -> None:
    await incidents.create_deployment(kube_api, namespace, "spiky", replicas=1)
    labels = await oom_labels(kube_api, namespace, "spiky", 1)
    prometheus = start_prometheus(
        _history(namespace, labels["pod"], lambda h: (60 if h < 20 else 125) * MI + _noise(h))
    )
    responder: Responder = await responder_factory(playbooks=PLAYBOOKS, prometheus={"url": prometheus.url})

    await responder.post("OOMKilled", labels)

    deployment = await read_deployment(kube_api, namespace, "spiky")
    [entry] = ledger_of(deployment)
    assert (entry.playbook, entry.action.value, entry.to_value) == ("oom-spike", "scale_out", "2")
    assert memory_limit(deployment) == "128Mi"
    action = next(n for n in responder.notifier.notices if n.kind is notices.NoticeKind.ACTION)
    assert action.analysis is not None and action.analysis.pattern is Pattern.SPIKE
    assert any("memory history: spike" in e.get("note", "") for e in await _events(kube_api, namespace))
    assert (
        responder.metrics.registry.get_sample_value("oom_responder_analyses_total", {"pattern": "spike"})
        == 1.0
    )


async def test_a_leak_is_raised_once_with_the_hours_it_buys_and_escalated(
    kube_api: client.ApiClient,
    namespace: str,
    responder_factory: Any,
    start_prometheus: Callable[[Iterable[Series]], PromStack],
) -> None:
    await incidents.create_deployment(kube_api, namespace, "leaky", replicas=1)
    labels = await oom_labels(kube_api, namespace, "leaky", 1)
    prometheus = start_prometheus(_history(namespace, labels["pod"], lambda h: (40 + 3 * h) * MI + _noise(h)))
    responder: Responder = await responder_factory(playbooks=PLAYBOOKS, prometheus={"url": prometheus.url})

    await responder.post("OOMKilled", labels)

    deployment = await read_deployment(kube_api, namespace, "leaky")
    assert memory_limit(deployment) == "228Mi"
    assert {(e.playbook, e.action.value) for e in ledger_of(deployment)} >= {("oom-leak", "raise_memory")}
    raised = next(
        n
        for n in responder.notifier.notices
        if n.kind is notices.NoticeKind.ACTION and n.action is not None and n.action.value == "raise_memory"
    )
    assert raised.analysis is not None and raised.analysis.pattern is Pattern.LINEAR_LEAK
    assert raised.analysis.slope_bytes_per_hour == pytest.approx(3 * MI, rel=0.1)
    notes = [e.get("note", "") for e in await _events(kube_api, namespace) if e["action"] == "raise_memory"]
    assert any(
        "memory history: linear leak, +3.0 MiB/h" in n and "raising to 228.0 MiB buys" in n for n in notes
    ), notes
    assert notices.NoticeKind.ESCALATION in responder.notifier.kinds()


@pytest.mark.parametrize("prometheus_state", ["stable-history", "absent"])
async def test_without_a_pattern_playbook_the_raise_of_today_answers(
    kube_api: client.ApiClient,
    namespace: str,
    responder_factory: Any,
    start_prometheus: Callable[[Iterable[Series]], PromStack],
    prometheus_state: str,
) -> None:
    await incidents.create_deployment(kube_api, namespace, "steady", replicas=1)
    labels = await oom_labels(kube_api, namespace, "steady", 1)
    if prometheus_state == "absent":
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        expected = Pattern.INSUFFICIENT_DATA
    else:
        url = start_prometheus(_history(namespace, labels["pod"], lambda h: 100 * MI + _noise(h))).url
        expected = Pattern.STABLE
    responder: Responder = await responder_factory(playbooks=PLAYBOOKS, prometheus={"url": url})

    await responder.post("OOMKilled", labels)

    deployment = await read_deployment(kube_api, namespace, "steady")
    assert memory_limit(deployment) == "228Mi"
    [entry] = ledger_of(deployment)
    assert entry.playbook == "oom-raise-memory"
    action = next(n for n in responder.notifier.notices if n.kind is notices.NoticeKind.ACTION)
    assert action.analysis is not None and action.analysis.pattern is expected
