"""Alerts refused before any request to the real API server: names that are not Kubernetes names, and (in a
namespaced install) namespaces outside those granted.

Covers: `pod=".."`, `pod="."` and `namespace=".."` (which survive URL quoting and would collapse the API path
into a GET of the Namespace, or a cluster-wide list) are answered `refused` in the 202 and make no API request
at all; with `kubernetes.namespaces` granting one namespace, an OOMKilled alert for a real Deployment in
another namespace is refused the same way, without a request, and the Deployment is left as it was; each
refusal is counted by reason and logged with it.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from kubernetes_asyncio import client

from tests.integration.mitigations.conftest import ResponderFactory
from tests.kubeplane import incidents

pytestmark = pytest.mark.integration


def _requests(responder: Any) -> float:
    return sum(
        sample.value
        for metric in responder.metrics.registry.collect()
        if metric.name == "oom_responder_kube_requests"
        for sample in metric.samples
        if sample.name.endswith("_total")
    )


@pytest.mark.parametrize(
    "labels",
    [
        pytest.param({"pod": ".."}, id="pod-dotdot"),
        pytest.param({"pod": "."}, id="pod-dot"),
        pytest.param({"namespace": "..", "pod": "api-1"}, id="namespace-dotdot"),
    ],
)
async def test_a_name_kubernetes_would_refuse_is_refused_without_a_request(
    responder_factory: ResponderFactory,
    namespace: str,
    labels: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    responder = await responder_factory()
    with caplog.at_level(logging.WARNING, logger="responder.web.receiving"):
        counts = await responder.post("OOMKilled", {"namespace": namespace, "container": "app", **labels})
    assert counts["refused"] == 1 and counts["accepted"] == 0
    assert _requests(responder) == 0
    assert (
        responder.metrics.registry.get_sample_value(
            "oom_responder_alerts_refused_total", {"reason": "invalid_name"}
        )
        == 1
    )
    [line] = [r for r in caplog.records if getattr(r, "decision", None) == "refused"]
    assert line.reason == "invalid_name"  # type: ignore[attr-defined]
    assert responder.notifier.notices == []


async def test_a_namespace_outside_the_granted_ones_is_refused_without_a_request(
    responder_factory: ResponderFactory, namespace: str, kube_api: client.ApiClient
) -> None:
    await incidents.create_deployment(kube_api, namespace, "api", replicas=1)
    [pod] = await incidents.wait_for_running_pods(kube_api, namespace, selector="app=api", count=1)
    responder = await responder_factory(kubernetes={"namespaces": ["somewhere-else"]})
    counts = await responder.post(
        "OOMKilled", {"namespace": namespace, "pod": pod["metadata"]["name"], "container": "app"}
    )
    assert counts["refused"] == 1
    assert _requests(responder) == 0
    assert (
        responder.metrics.registry.get_sample_value(
            "oom_responder_alerts_refused_total", {"reason": "out_of_scope"}
        )
        == 1
    )
    after = await client.AppsV1Api(kube_api).read_namespaced_deployment("api", namespace)
    assert after.spec.template.spec.containers[0].resources.limits["memory"] == "128Mi"
    assert (after.metadata.annotations or {}).get("oom-responder.io/ledger") is None
