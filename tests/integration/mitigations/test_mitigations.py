"""Mitigations against the real control plane, driven through POST /webhook, read back from the API server.

Aspects covered:

* OOMKilled → the memory limit of a Deployment and of a StatefulSet is raised, the new pods carry it, and the
  ledger on the workload records it (and the rollout's verification);
* PodMemoryHigh → scaled out; with an HPA, its minReplicas is raised instead;
* PodRestartingFrequently → scaled out and escalated;
* refusals: a quota refusal caught before any write, an eviction blocked by a PDB (and tried again on the
  next delivery of the alert once the PDB allows it), a paused Deployment, a
  container without a limit, a pod already gone, a DaemonSet that cannot be scaled (falls through to eviction);
* a 409 race with a concurrent writer yields exactly one raise;
* dry-run writes nothing.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from kubernetes_asyncio import client

from responder.models import decisions, notices
from tests.integration.mitigations.conftest import Responder
from tests.integration.mitigations.readback import ledger_of, memory_limit, oom_labels, read_deployment
from tests.kubeplane import incidents

pytestmark = pytest.mark.integration


async def test_an_oom_kill_raises_the_deployment_memory_and_new_pods_carry_it(
    kube_api: client.ApiClient, namespace: str, responder_factory: Any
) -> None:
    responder: Responder = await responder_factory()
    await incidents.create_deployment(kube_api, namespace, "web", replicas=2)
    labels = await oom_labels(kube_api, namespace, "web", 2)

    await responder.post("OOMKilled", labels)

    deployment = await read_deployment(kube_api, namespace, "web")
    assert memory_limit(deployment) == "228Mi"
    [entry] = ledger_of(deployment)
    assert (entry.from_value, entry.to_value, entry.by) == ("128Mi", "228Mi", "responder-test")
    assert entry.result is decisions.Outcome.DONE
    pods = await incidents.wait_for_running_pods(kube_api, namespace, selector="app=web", count=2)
    assert {p["spec"]["containers"][0]["resources"]["limits"]["memory"] for p in pods} == {"228Mi"}
    assert notices.NoticeKind.VERIFICATION in responder.notifier.kinds()
    assert responder.count("oom-raise-memory", "raise_memory", "done") == 1
    # Raw JSON: the generated model refuses the controllers' own Events, which have no eventTime.
    answer = await client.EventsV1Api(kube_api).list_namespaced_event(namespace, _preload_content=False)
    recorded = json.loads(await answer.read())["items"]
    ours = [e for e in recorded if e.get("reportingController") == "oom-responder"]
    assert {e["action"] for e in ours} == {"raise_memory", "verify"}
    assert all(e["regarding"]["kind"] == "Deployment" and e["regarding"]["name"] == "web" for e in ours)
    assert all(e["reportingInstance"] == "responder-test" for e in ours)


async def test_an_oom_kill_raises_the_statefulset_memory(
    kube_api: client.ApiClient, namespace: str, responder_factory: Any
) -> None:
    responder: Responder = await responder_factory()
    await incidents.create_statefulset(kube_api, namespace, "db", replicas=1)
    labels = await oom_labels(kube_api, namespace, "db", 1)

    await responder.post("OOMKilled", labels)

    sts = incidents.to_dict(
        kube_api, await client.AppsV1Api(kube_api).read_namespaced_stateful_set("db", namespace)
    )
    assert memory_limit(sts) == "228Mi"
    assert ledger_of(sts)[0].to_value == "228Mi"

    async def new_pod_carries_it() -> bool:
        pods = await incidents.wait_for_running_pods(kube_api, namespace, selector="app=db", count=1)
        return bool(pods[0]["spec"]["containers"][0]["resources"]["limits"]["memory"] == "228Mi")

    assert await incidents.wait_for(new_pod_carries_it, timeout_seconds=60, what="the new StatefulSet pod")


async def test_a_repeat_of_the_same_kill_is_not_raised_twice(
    kube_api: client.ApiClient, namespace: str, responder_factory: Any
) -> None:
    first: Responder = await responder_factory(identity="responder-a")
    # Another replica (its own deduplication cache) gets the same alert after the first answered it; by then
    # the rollout replaced the alerted pod, so only the ledger knows where the occurrence went.
    responder: Responder = await responder_factory(identity="responder-b")
    await incidents.create_deployment(kube_api, namespace, "web", replicas=1)
    labels = await oom_labels(kube_api, namespace, "web", 1)

    await first.post("OOMKilled", labels)
    await responder.post("OOMKilled", labels)

    deployment = await read_deployment(kube_api, namespace, "web")
    assert memory_limit(deployment) == "228Mi"
    assert len(ledger_of(deployment)) == 1
    assert notices.NoticeKind.REPEAT in responder.notifier.kinds()


async def test_memory_high_scales_out(
    kube_api: client.ApiClient, namespace: str, responder_factory: Any
) -> None:
    responder: Responder = await responder_factory()
    await incidents.create_deployment(kube_api, namespace, "web", replicas=2)
    pods = await incidents.wait_for_running_pods(kube_api, namespace, selector="app=web", count=2)

    await responder.post("PodMemoryHigh", {"namespace": namespace, "pod": pods[0]["metadata"]["name"]})

    deployment = await read_deployment(kube_api, namespace, "web")
    assert deployment["spec"]["replicas"] == 3
    assert ledger_of(deployment)[0].to_value == "3"
    await incidents.wait_for_running_pods(kube_api, namespace, selector="app=web", count=3)


async def test_memory_high_with_an_hpa_raises_its_min_replicas(
    kube_api: client.ApiClient, namespace: str, responder_factory: Any
) -> None:
    responder: Responder = await responder_factory()
    deployment = await incidents.create_deployment(kube_api, namespace, "web", replicas=2)
    await incidents.create_hpa(kube_api, namespace, deployment, min_replicas=2, max_replicas=5)
    pods = await incidents.wait_for_running_pods(kube_api, namespace, selector="app=web", count=2)

    await responder.post("PodMemoryHigh", {"namespace": namespace, "pod": pods[0]["metadata"]["name"]})

    hpa = await client.AutoscalingV2Api(kube_api).read_namespaced_horizontal_pod_autoscaler("web", namespace)
    assert hpa.spec.min_replicas == 3
    after = await read_deployment(kube_api, namespace, "web")
    assert ledger_of(after)[0].to_value == "3"


async def test_restarting_frequently_scales_out_and_escalates(
    kube_api: client.ApiClient, namespace: str, responder_factory: Any
) -> None:
    responder: Responder = await responder_factory()
    await incidents.create_deployment(kube_api, namespace, "web", replicas=1)
    pods = await incidents.wait_for_running_pods(kube_api, namespace, selector="app=web", count=1)

    await responder.post(
        "PodRestartingFrequently", {"namespace": namespace, "pod": pods[0]["metadata"]["name"]}
    )

    deployment = await read_deployment(kube_api, namespace, "web")
    assert deployment["spec"]["replicas"] == 2
    escalations = [n for n in responder.notifier.notices if n.kind is notices.NoticeKind.ESCALATION]
    assert len(escalations) == 1
    assert "scaled out 1 → 2" in escalations[0].detail
    diagnostics = [
        n for n in responder.notifier.notices if n.action and n.action.value == "capture_diagnostics"
    ]
    assert diagnostics and "container app" in diagnostics[0].detail


async def test_a_quota_refusal_is_caught_before_any_write(
    kube_api: client.ApiClient, namespace: str, responder_factory: Any
) -> None:
    responder: Responder = await responder_factory()
    await incidents.create_deployment(kube_api, namespace, "web", replicas=1)
    labels = await oom_labels(kube_api, namespace, "web", 1)
    await incidents.create_resource_quota(kube_api, namespace, hard={"limits.memory": "300Mi"})
    before = await read_deployment(kube_api, namespace, "web")

    await responder.post("OOMKilled", labels)

    after = await read_deployment(kube_api, namespace, "web")
    assert memory_limit(after) == "128Mi"
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    refusals = [n for n in responder.notifier.notices if n.reason is decisions.Reason.QUOTA_REFUSED]
    assert refusals and "quota" in refusals[0].detail


async def test_an_eviction_blocked_by_a_pdb_is_reported(
    kube_api: client.ApiClient, namespace: str, responder_factory: Any
) -> None:
    book = {"name": "evict", "alerts": ["memory_high"], "actions": ["evict_pod"]}
    responder: Responder = await responder_factory(playbooks=[book])
    await incidents.create_deployment(kube_api, namespace, "web", replicas=2)
    pods = await incidents.wait_for_running_pods(kube_api, namespace, selector="app=web", count=2)
    await incidents.create_pdb(kube_api, namespace, "web", selector={"app": "web"}, min_available=2)

    async def pdb_ready() -> bool:
        pdb = await client.PolicyV1Api(kube_api).read_namespaced_pod_disruption_budget("web", namespace)
        return bool(pdb.status and pdb.status.observed_generation)

    await incidents.wait_for(pdb_ready, what="the PDB's status")
    victim = pods[0]["metadata"]["name"]

    await responder.post("PodMemoryHigh", {"namespace": namespace, "pod": victim})

    pod = await client.CoreV1Api(kube_api).read_namespaced_pod(victim, namespace)
    assert pod.metadata.deletion_timestamp is None
    assert ledger_of(await read_deployment(kube_api, namespace, "web")) == []
    assert any(n.reason is decisions.Reason.PDB_BLOCKED for n in responder.notifier.notices)


async def test_an_eviction_blocked_by_a_pdb_is_tried_again_on_the_next_delivery(
    kube_api: client.ApiClient, namespace: str, responder_factory: Any
) -> None:
    book = {"name": "evict", "alerts": ["memory_high"], "actions": ["evict_pod"]}
    responder: Responder = await responder_factory(playbooks=[book])
    await incidents.create_deployment(kube_api, namespace, "web", replicas=2)
    pods = await incidents.wait_for_running_pods(kube_api, namespace, selector="app=web", count=2)
    await incidents.create_pdb(kube_api, namespace, "web", selector={"app": "web"}, min_available=2)
    policy = client.PolicyV1Api(kube_api)

    async def pdb_ready() -> bool:
        pdb = await policy.read_namespaced_pod_disruption_budget("web", namespace)
        return bool(pdb.status and pdb.status.observed_generation)

    await incidents.wait_for(pdb_ready, what="the PDB's status")
    victim = {"namespace": namespace, "pod": pods[0]["metadata"]["name"]}

    assert (await responder.post("PodMemoryHigh", victim))["accepted"] == 1
    # The same occurrence again (a group re-send): a PDB refusal may pass, so it is taken, not deduplicated.
    assert (await responder.post("PodMemoryHigh", victim))["accepted"] == 1
    # Taken twice; the second refusal, the same as the first within notifiers.repeat_window_seconds, is counted
    # rather than notified again.
    assert responder.count("evict", "evict_pod", "failed") == 2
    assert [n.reason for n in responder.notifier.notices].count(decisions.Reason.PDB_BLOCKED) == 1

    await policy.delete_namespaced_pod_disruption_budget("web", namespace)
    assert (await responder.post("PodMemoryHigh", victim))["accepted"] == 1

    try:
        pod = await client.CoreV1Api(kube_api).read_namespaced_pod(victim["pod"], namespace)
    except client.exceptions.ApiException as e:
        assert e.status == 404  # fake nodes remove an evicted pod at once
    else:
        assert pod.metadata.deletion_timestamp is not None
    [entry] = ledger_of(await read_deployment(kube_api, namespace, "web"))
    assert entry.action.value == "evict_pod"
    # Done: from now on the same occurrence is a duplicate again.
    assert (await responder.post("PodMemoryHigh", victim))["duplicates"] == 1


async def test_a_concurrent_writer_causes_a_replan_and_exactly_one_raise(
    kube_api: client.ApiClient, namespace: str, responder_factory: Any
) -> None:
    first: Responder = await responder_factory(identity="responder-a")
    second: Responder = await responder_factory(identity="responder-b")
    await incidents.create_deployment(kube_api, namespace, "web", replicas=1)
    labels = await oom_labels(kube_api, namespace, "web", 1)

    # Two replicas receive the same alert at once (Alertmanager HA delivers to both).
    await asyncio.gather(first.post("OOMKilled", labels), second.post("OOMKilled", labels))

    deployment = await read_deployment(kube_api, namespace, "web")
    assert memory_limit(deployment) == "228Mi"
    assert len(ledger_of(deployment)) == 1
    done = first.count("oom-raise-memory", "raise_memory", "done") + second.count(
        "oom-raise-memory", "raise_memory", "done"
    )
    assert done == 1


async def test_a_paused_deployment_is_refused(
    kube_api: client.ApiClient, namespace: str, responder_factory: Any
) -> None:
    responder: Responder = await responder_factory()
    await incidents.create_deployment(kube_api, namespace, "web", replicas=1)
    labels = await oom_labels(kube_api, namespace, "web", 1)
    await client.AppsV1Api(kube_api).patch_namespaced_deployment(
        "web", namespace, {"spec": {"paused": True}}, **incidents.MERGE_PATCH
    )

    await responder.post("OOMKilled", labels)

    deployment = await read_deployment(kube_api, namespace, "web")
    assert memory_limit(deployment) == "128Mi"
    assert any(n.reason is decisions.Reason.PAUSED_ROLLOUT for n in responder.notifier.notices)


async def test_a_container_without_a_limit_is_skipped_and_reported(
    kube_api: client.ApiClient, namespace: str, responder_factory: Any
) -> None:
    responder: Responder = await responder_factory()
    containers = [incidents.container(memory_limit=None)]
    await incidents.create_deployment(kube_api, namespace, "web", replicas=1, containers=containers)
    labels = await oom_labels(kube_api, namespace, "web", 1)

    await responder.post("OOMKilled", labels)

    deployment = await read_deployment(kube_api, namespace, "web")
    assert memory_limit(deployment) == "None"
    assert ledger_of(deployment) == []
    assert any(n.reason is decisions.Reason.NO_MEMORY_LIMIT for n in responder.notifier.notices)


async def test_an_alert_for_a_pod_already_gone_is_reported(
    kube_api: client.ApiClient, namespace: str, responder_factory: Any
) -> None:
    responder: Responder = await responder_factory()

    await responder.post("OOMKilled", {"namespace": namespace, "pod": "web-5f8d9-gone1", "container": "app"})

    assert [n.reason for n in responder.notifier.notices] == [decisions.Reason.TARGET_NOT_FOUND]
    assert responder.count("oom-raise-memory", "raise_memory", "skipped") == 1


async def test_a_daemonset_is_not_scaled_and_the_next_action_evicts(
    kube_api: client.ApiClient, namespace: str, responder_factory: Any
) -> None:
    responder: Responder = await responder_factory()
    await incidents.create_daemonset(kube_api, namespace, "agent")
    pods = await incidents.wait_for_running_pods(kube_api, namespace, selector="app=agent", count=3)
    victim = pods[0]["metadata"]["name"]

    await responder.post("PodMemoryHigh", {"namespace": namespace, "pod": victim})

    reasons = [(n.action.value if n.action else None, n.reason) for n in responder.notifier.notices]
    assert ("scale_out", decisions.Reason.NOT_SCALABLE) in reasons

    async def evicted() -> bool:
        try:
            pod = await client.CoreV1Api(kube_api).read_namespaced_pod(victim, namespace)
        except client.exceptions.ApiException as e:
            return e.status == 404
        return pod.metadata.deletion_timestamp is not None

    assert await incidents.wait_for(evicted, what="the evicted pod to go")
    ds = incidents.to_dict(
        kube_api, await client.AppsV1Api(kube_api).read_namespaced_daemon_set("agent", namespace)
    )
    assert ledger_of(ds)[0].action.value == "evict_pod"


async def test_dry_run_writes_nothing(
    kube_api: client.ApiClient, namespace: str, responder_factory: Any
) -> None:
    responder: Responder = await responder_factory(mode="dry-run")
    await incidents.create_deployment(kube_api, namespace, "web", replicas=1)
    labels = await oom_labels(kube_api, namespace, "web", 1)
    before = await read_deployment(kube_api, namespace, "web")

    await responder.post("OOMKilled", labels)

    after = await read_deployment(kube_api, namespace, "web")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert memory_limit(after) == "128Mi"
    assert responder.count("oom-raise-memory", "raise_memory", "would_do") == 1
    [action] = [n for n in responder.notifier.notices if n.kind is notices.NoticeKind.ACTION]
    assert action.dry_run and action.to_value == "228Mi"
