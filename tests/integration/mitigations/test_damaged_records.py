"""Records the service keeps in the cluster, damaged by hand, on the real control plane: it fails closed, says
why, and never raises into the worker.

Covers: the cluster-wide state ConfigMap edited to hold a time without a zone (it used to raise TypeError on
every mutating alert) or NaN budget tokens (which refilled the budget): an OOMKilled alert is refused as
`paused`, the refusal quotes what is wrong with the object, nothing is written, no work item fails. A
workload's ledger annotation nested 1,000 deep (it used to raise RecursionError), holding an entry whose time
has no zone (TypeError), or junk (which read as an empty ledger and reset the cap): the alert is escalated as
"cap reached" for that workload only, naming the annotation, nothing is written, no work item fails; another
workload in the same namespace is still raised.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes_asyncio import client

from responder.models import cluster_state, decisions, ledgers, notices
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


@pytest.mark.parametrize(
    "ledger",
    [
        pytest.param("[" * 1000 + "]" * 1000, id="nested-1000-deep"),
        pytest.param(
            json.dumps(
                [
                    {
                        "action": "raise_memory",
                        "playbook": "oom-raise-memory",
                        "occurrence": "x@y",
                        "at": "2026-03-01T11:00:00",
                        "by": "someone",
                    }
                ]
            ),
            id="naive-time",
        ),
        pytest.param("junk, not a ledger", id="junk"),
    ],
)
async def test_a_tampered_ledger_is_cap_reached_for_that_workload_only(
    responder_factory: ResponderFactory, namespace: str, kube_api: client.ApiClient, ledger: str
) -> None:
    tampered = await _oom(kube_api, namespace, "tampered", annotations={ledgers.ANNOTATION: ledger})
    healthy = await _oom(kube_api, namespace, "healthy")
    responder = await responder_factory()
    await responder.post("OOMKilled", {"namespace": namespace, "pod": tampered, "container": "app"})
    await responder.post("OOMKilled", {"namespace": namespace, "pod": healthy, "container": "app"})
    assert _failures(responder) == 0
    assert await _memory(kube_api, namespace, "tampered") == "128Mi"
    assert await _memory(kube_api, namespace, "healthy") == "228Mi"
    [escalation] = [
        n
        for n in responder.notifier.notices
        if n.kind is notices.NoticeKind.ESCALATION and n.target is not None and n.target.name == "tampered"
    ]
    assert escalation.guardrail is decisions.Guardrail.CAP
    assert f"annotation {ledgers.ANNOTATION}" in escalation.detail
