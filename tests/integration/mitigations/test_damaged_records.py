"""Records the service keeps in the cluster, damaged by hand, on the real control plane: it fails closed, says
why, and never raises into the worker.

Covers: the cluster-wide state ConfigMap edited to hold a time without a zone (it used to raise TypeError on
every mutating alert) or NaN budget tokens (which refilled the budget): an OOMKilled alert is refused as
`paused`, the refusal quotes what is wrong with the object, nothing is written, no work item fails.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes_asyncio import client

from responder.models import cluster_state, decisions
from tests.integration.mitigations.conftest import ResponderFactory
from tests.kubeplane import incidents

pytestmark = pytest.mark.integration

_GOOD_STATE = json.loads(cluster_state.ClusterState(budget_tokens=5.0).to_json())


async def _oom(kube_api: client.ApiClient, namespace: str, name: str, **options: Any) -> str:
    await incidents.create_deployment(kube_api, namespace, name, replicas=1, **options)
    [pod] = await incidents.wait_for_running_pods(kube_api, namespace, selector=f"app={name}", count=1)
    await incidents.mark_oom_killed(kube_api, pod)
    return str(pod["metadata"]["name"])


async def _memory(kube_api: client.ApiClient, namespace: str, name: str) -> str:
    deployment = await client.AppsV1Api(kube_api).read_namespaced_deployment(name, namespace)
    return str(deployment.spec.template.spec.containers[0].resources.limits["memory"])


def _failures(responder: Any) -> float:
    return responder.metrics.registry.get_sample_value("oom_responder_work_failures_total") or 0.0


@pytest.mark.parametrize(
    ("state_json", "why"),
    [
        pytest.param(
            json.dumps({**_GOOD_STATE, "budget_refilled_at": "2026-03-01T11:00:00"}),
            "budget_refilled_at",
            id="naive-time",
        ),
        pytest.param(
            json.dumps(_GOOD_STATE).replace('"budget_tokens": 5.0', '"budget_tokens": NaN'),
            "budget_tokens",
            id="nan-tokens",
        ),
    ],
)
async def test_a_hand_edited_state_object_pauses_every_write_and_says_why(
    responder_factory: ResponderFactory,
    namespace: str,
    kube_api: client.ApiClient,
    state_json: str,
    why: str,
) -> None:
    assert state_json != json.dumps(_GOOD_STATE)
    pod = await _oom(kube_api, namespace, "api")
    await client.CoreV1Api(kube_api).create_namespaced_config_map(
        namespace,
        {
            "metadata": {"name": "oom-responder-state"},
            "data": {cluster_state.DATA_KEY: state_json},
        },
    )
    responder = await responder_factory()
    counts = await responder.post("OOMKilled", {"namespace": namespace, "pod": pod, "container": "app"})
    assert counts["accepted"] == 1
    assert _failures(responder) == 0
    assert await _memory(kube_api, namespace, "api") == "128Mi"
    [refusal] = [n for n in responder.notifier.notices if n.guardrail is decisions.Guardrail.PAUSED]
    assert "state object (state.json) is unreadable" in refusal.detail and why in refusal.detail
