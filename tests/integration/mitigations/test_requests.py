"""What a mitigation costs in API requests, against the real control plane, driven through POST /webhook.

Aspects covered:

* raises on two Deployments, followed to the end of their rollouts, list nothing (the verification reads
  each Deployment, never a namespace's ReplicaSets or Events) and ask for the unserved VPA API once;
* the guardrail state is never lost to a race between tasks of the same process;
* a repeat whose pod the rollout replaced is found on the Deployment the pod's name points at, without
  listing the namespace's workloads;
* a new occurrence for a pod that is gone is traced through the ReplicaSet its name comes from to the
  Deployment, and skipped there (the pod is gone), without listing either.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes_asyncio import client

from responder.models import decisions, notices
from tests.integration.mitigations.conftest import Responder
from tests.kubeplane import incidents

pytestmark = pytest.mark.integration


def requests(responder: Responder, verb: str, code: str) -> float:
    # Summed over the `resource` label.
    return sum(
        sample.value
        for family in responder.metrics.registry.collect()
        for sample in family.samples
        if sample.name == "oom_responder_kube_requests_total"
        and (sample.labels["verb"], sample.labels["code"]) == (verb, code)
    )


async def oom_labels(api: client.ApiClient, namespace: str, app: str) -> dict[str, str]:
    pods = await incidents.wait_for_running_pods(api, namespace, selector=f"app={app}", count=1)
    await incidents.mark_oom_killed(api, pods[0])
    return {"namespace": namespace, "pod": pods[0]["metadata"]["name"], "container": "app"}


async def raised_and_replaced(
    api: client.ApiClient, namespace: str, responder: Responder, app: str
) -> dict[str, str]:
    """Raise `app`'s memory through `responder` and wait until the rollout removed the alerted pod."""
    await incidents.create_deployment(api, namespace, app, replicas=1)
    labels = await oom_labels(api, namespace, app)
    await responder.post("OOMKilled", labels)
    assert responder.count("oom-raise-memory", "raise_memory", "done") == 1
    core = client.CoreV1Api(api)

    async def gone() -> bool:
        try:
            await core.read_namespaced_pod(labels["pod"], namespace)
        except client.exceptions.ApiException as e:
            return e.status == 404
        return False

    await incidents.wait_for(gone, timeout_seconds=60, what="the alerted pod to be replaced")
    return labels


async def test_raises_followed_to_the_end_list_nothing_and_ask_for_the_vpa_api_once(
    kube_api: client.ApiClient, namespace: str, responder_factory: Any
) -> None:
    responder: Responder = await responder_factory()
    for app in ("web", "api"):
        await incidents.create_deployment(kube_api, namespace, app, replicas=1)
        await responder.post("OOMKilled", await oom_labels(kube_api, namespace, app))

    assert responder.count("oom-raise-memory", "raise_memory", "done") == 2
    verdicts = [n for n in responder.notifier.notices if n.kind is notices.NoticeKind.VERIFICATION]
    assert [n.outcome for n in verdicts] == [decisions.Outcome.DONE, decisions.Outcome.DONE]
    assert requests(responder, "list", "200") == 0
    assert requests(responder, "list", "404") == 1
    assert requests(responder, "update", "409") == 0


async def test_a_repeat_whose_pod_was_replaced_is_found_by_the_pod_name_without_listing(
    kube_api: client.ApiClient, namespace: str, responder_factory: Any
) -> None:
    first: Responder = await responder_factory(identity="responder-a")
    labels = await raised_and_replaced(kube_api, namespace, first, "web")
    other: Responder = await responder_factory(identity="responder-b")

    await other.post("OOMKilled", labels)

    [repeat] = [n for n in other.notifier.notices if n.kind is notices.NoticeKind.REPEAT]
    assert repeat.target is not None and repeat.target.name == "web"
    assert repeat.reason is decisions.Reason.ALREADY_HANDLED
    assert requests(other, "list", "200") == 0


async def test_a_new_occurrence_for_a_gone_pod_is_traced_through_its_replicaset_without_listing(
    kube_api: client.ApiClient, namespace: str, responder_factory: Any
) -> None:
    first: Responder = await responder_factory(identity="responder-a")
    labels = await raised_and_replaced(kube_api, namespace, first, "web")
    other: Responder = await responder_factory(identity="responder-b")

    await other.post("OOMKilled", labels, starts_at="2026-03-01T11:10:00Z")

    [skipped] = other.notifier.notices
    assert skipped.reason is decisions.Reason.POD_GONE
    assert skipped.target is not None and skipped.target.name == "web"
    assert other.count("oom-raise-memory", "raise_memory", "skipped") == 1
    assert requests(other, "list", "200") == 0
