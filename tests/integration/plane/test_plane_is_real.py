"""The test control plane behaves like a real cluster where oom-responder depends on it.

Aspects covered:

* controllers: a Deployment gets a ReplicaSet, and kwok's fake nodes run its pods;
* rollouts: a ``kubectl.kubernetes.io/restartedAt`` template annotation makes a new ReplicaSet
  that replaces every pod;
* optimistic concurrency: a merge patch carrying a stale ``metadata.resourceVersion`` gets 409;
* RBAC: a ServiceAccount allowed to read but not patch gets 403 (TokenRequest tokens work);
* admission: a ResourceQuota refuses a pod, and the ReplicaSet reports ``FailedCreate``;
* disruption: an eviction blocked by a PodDisruptionBudget gets 429;
* status: an OOMKilled mark on a pod's status sticks (kwok does not overwrite it);
* other workloads: StatefulSets and DaemonSets get Running pods on the fake nodes;
* in-place resize: ``pods/resize`` is admitted (kwok reports containerStatuses[].resources) and
  ``complete_resize`` reports it done;
* LimitRange: a container above the max is refused with 403; an HPA on memory is accepted;
* version: ``/version`` reports the pinned Kubernetes release.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from tests.kubeplane import incidents
from tests.kubeplane.plane import KubePlane

pytestmark = pytest.mark.integration


async def _replicasets(api: client.ApiClient, namespace: str, app: str) -> list[dict[str, Any]]:
    rs_list = await client.AppsV1Api(api).list_namespaced_replica_set(namespace, label_selector=f"app={app}")
    return [incidents.to_dict(api, rs) for rs in rs_list.items]


def _owner_uid(obj: dict[str, Any]) -> str:
    refs = obj["metadata"].get("ownerReferences") or []
    return str(refs[0]["uid"]) if refs else ""


def test_version_reports_the_pinned_kubernetes_release(kube_plane: KubePlane) -> None:
    out = kube_plane.kubectl("version", "-o", "json").stdout
    assert '"gitVersion": "v1.' in out
    assert kube_plane.version["gitVersion"].startswith("v1.")
    assert kube_plane.version["gitVersion"] != "v0.0.0-master+$Format:%H$"


async def test_a_deployment_gets_a_replicaset_and_running_pods(
    kube_api: client.ApiClient, namespace: str
) -> None:
    deployment = await incidents.create_deployment(kube_api, namespace, "web", replicas=2)

    pods = await incidents.wait_for_running_pods(kube_api, namespace, selector="app=web", count=2)

    replicasets = await _replicasets(kube_api, namespace, "web")
    assert len(replicasets) == 1
    assert _owner_uid(replicasets[0]) == deployment["metadata"]["uid"]
    assert {_owner_uid(p) for p in pods} == {replicasets[0]["metadata"]["uid"]}
    assert all(p["spec"]["nodeName"].startswith("kwok-node-") for p in pods)
    assert all(p["status"]["containerStatuses"][0]["state"].get("running") for p in pods)


async def test_a_rollout_restart_creates_a_new_replicaset_and_replaces_the_pods(
    kube_api: client.ApiClient, namespace: str
) -> None:
    await incidents.create_deployment(kube_api, namespace, "web", replicas=2)
    old_pods = await incidents.wait_for_running_pods(kube_api, namespace, selector="app=web", count=2)
    (old_rs,) = await _replicasets(kube_api, namespace, "web")

    await client.AppsV1Api(kube_api).patch_namespaced_deployment(
        "web",
        namespace,
        {
            "spec": {
                "template": {
                    "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"}}
                }
            }
        },
        **incidents.MERGE_PATCH,
    )

    old_names = {p["metadata"]["name"] for p in old_pods}

    async def replaced() -> list[dict[str, Any]] | None:
        pods = await incidents.wait_for_running_pods(kube_api, namespace, selector="app=web", count=2)
        return pods if not old_names & {p["metadata"]["name"] for p in pods} else None

    new_pods = await incidents.wait_for(replaced, timeout_seconds=60, what="pods replaced")
    replicasets = await _replicasets(kube_api, namespace, "web")
    new_rs = [rs for rs in replicasets if rs["metadata"]["uid"] != old_rs["metadata"]["uid"]]
    assert len(new_rs) == 1
    assert {_owner_uid(p) for p in new_pods} == {new_rs[0]["metadata"]["uid"]}


async def test_a_merge_patch_with_a_stale_resource_version_gets_409(
    kube_api: client.ApiClient, namespace: str
) -> None:
    apps = client.AppsV1Api(kube_api)
    created = await incidents.create_deployment(kube_api, namespace, "web", replicas=1)
    stale = created["metadata"]["resourceVersion"]
    await apps.patch_namespaced_deployment(
        "web", namespace, {"metadata": {"labels": {"touched": "yes"}}}, **incidents.MERGE_PATCH
    )

    with pytest.raises(ApiException) as err:
        await apps.patch_namespaced_deployment(
            "web",
            namespace,
            {"metadata": {"resourceVersion": stale, "labels": {"touched": "again"}}},
            **incidents.MERGE_PATCH,
        )
    assert err.value.status == 409


async def test_a_service_account_without_patch_permission_gets_403(
    kube_plane: KubePlane,
    kube_api: client.ApiClient,
    namespace: str,
    service_account_kubeconfig: Any,
) -> None:
    await incidents.create_deployment(kube_api, namespace, "web", replicas=1)
    kubeconfig: Path = service_account_kubeconfig(
        namespace, [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "watch"]}]
    )
    reader = await kube_plane.api_client(kubeconfig)
    try:
        apps = client.AppsV1Api(reader)
        got = await apps.read_namespaced_deployment("web", namespace)
        assert got.metadata.name == "web"
        with pytest.raises(ApiException) as err:
            await apps.patch_namespaced_deployment(
                "web", namespace, {"metadata": {"labels": {"x": "y"}}}, **incidents.MERGE_PATCH
            )
        assert err.value.status == 403
    finally:
        await reader.close()


async def test_a_resource_quota_refuses_a_pod_and_the_replicaset_reports_failed_create(
    kube_api: client.ApiClient, namespace: str
) -> None:
    await incidents.create_resource_quota(kube_api, namespace, hard={"limits.memory": "200Mi"})
    # Two 128Mi-limited pods need 256Mi: the quota admits one and refuses the other.
    await incidents.create_deployment(kube_api, namespace, "web", replicas=2)

    async def failed_create() -> dict[str, Any] | None:
        for rs in await _replicasets(kube_api, namespace, "web"):
            for cond in rs.get("status", {}).get("conditions") or []:
                if cond["type"] == "ReplicaFailure" and cond["reason"] == "FailedCreate":
                    return dict(cond)
        return None

    cond = await incidents.wait_for(failed_create, timeout_seconds=30, what="ReplicaFailure condition")
    assert "exceeded quota" in cond["message"]
    events = await client.CoreV1Api(kube_api).list_namespaced_event(
        namespace, field_selector="reason=FailedCreate"
    )
    assert any("exceeded quota" in (e.message or "") for e in events.items)
    await incidents.wait_for_running_pods(kube_api, namespace, selector="app=web", count=1)


async def test_an_eviction_blocked_by_a_pdb_gets_429(kube_api: client.ApiClient, namespace: str) -> None:
    await incidents.create_deployment(kube_api, namespace, "web", replicas=2)
    pods = await incidents.wait_for_running_pods(kube_api, namespace, selector="app=web", count=2)
    await incidents.create_pdb(kube_api, namespace, "web", selector={"app": "web"}, min_available=2)

    async def pdb_observed() -> bool:
        pdb = await client.PolicyV1Api(kube_api).read_namespaced_pod_disruption_budget("web", namespace)
        return bool(pdb.status and pdb.status.observed_generation and pdb.status.current_healthy == 2)

    await incidents.wait_for(pdb_observed, timeout_seconds=30, what="PDB status")
    with pytest.raises(ApiException) as err:
        await incidents.evict(kube_api, pods[0])
    assert err.value.status == 429


async def test_an_oom_killed_mark_sticks_on_the_pod_status(
    kube_api: client.ApiClient, namespace: str
) -> None:
    await incidents.create_deployment(kube_api, namespace, "web", replicas=1)
    (pod,) = await incidents.wait_for_running_pods(kube_api, namespace, selector="app=web", count=1)

    await incidents.mark_oom_killed(kube_api, pod, "app")

    async def marked() -> dict[str, Any] | None:
        current = await client.CoreV1Api(kube_api).read_namespaced_pod(pod["metadata"]["name"], namespace)
        status = incidents.to_dict(kube_api, current)["status"]["containerStatuses"][0]
        return status if status.get("lastState", {}).get("terminated") else None

    status = await incidents.wait_for(marked, timeout_seconds=5, what="OOMKilled mark")
    assert status["lastState"]["terminated"]["reason"] == "OOMKilled"
    assert status["lastState"]["terminated"]["exitCode"] == 137
    assert status["restartCount"] == 1


async def test_statefulsets_and_daemonsets_get_running_pods(
    kube_plane: KubePlane, kube_api: client.ApiClient, namespace: str
) -> None:
    await incidents.create_statefulset(kube_api, namespace, "db", replicas=2)
    await incidents.create_daemonset(kube_api, namespace, "agent")

    db = await incidents.wait_for_running_pods(kube_api, namespace, selector="app=db", count=2)
    agents = await incidents.wait_for_running_pods(
        kube_api, namespace, selector="app=agent", count=len(kube_plane.node_names)
    )

    assert [p["metadata"]["name"] for p in db] == ["db-0", "db-1"]
    assert {p["spec"]["nodeName"] for p in agents} == set(kube_plane.node_names)


async def test_an_in_place_resize_is_admitted_and_completes_when_reported(
    kube_api: client.ApiClient, namespace: str
) -> None:
    await incidents.create_deployment(kube_api, namespace, "web", replicas=1)
    (pod,) = await incidents.wait_for_running_pods(kube_api, namespace, selector="app=web", count=1)
    core = client.CoreV1Api(kube_api)
    resources = {"limits": {"memory": "256Mi"}, "requests": {"memory": "64Mi", "cpu": "10m"}}

    await core.patch_namespaced_pod_resize(
        pod["metadata"]["name"],
        namespace,
        {"spec": {"containers": [{"name": "app", "resources": resources}]}},
        **incidents.MERGE_PATCH,
    )
    done = await incidents.complete_resize(kube_api, pod)

    assert done["spec"]["containers"][0]["resources"]["limits"]["memory"] == "256Mi"
    assert done["status"]["containerStatuses"][0]["resources"]["limits"]["memory"] == "256Mi"
    assert done["status"]["observedGeneration"] == done["metadata"]["generation"]


async def test_a_limit_range_refuses_a_container_above_its_max(
    kube_api: client.ApiClient, namespace: str
) -> None:
    await incidents.create_limit_range(kube_api, namespace, max_memory="100Mi")
    pod: Any = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "big"},
        "spec": {"containers": [incidents.container(memory_limit="128Mi")]},
    }

    with pytest.raises(ApiException) as err:
        await client.CoreV1Api(kube_api).create_namespaced_pod(namespace, pod)
    assert err.value.status == 403
    assert "maximum memory usage per Container is 100Mi" in str(err.value.body)


async def test_an_hpa_on_memory_is_accepted_for_a_deployment(
    kube_api: client.ApiClient, namespace: str
) -> None:
    deployment = await incidents.create_deployment(kube_api, namespace, "web", replicas=1)
    hpa = await incidents.create_hpa(
        kube_api, namespace, {**deployment, "kind": "Deployment"}, max_replicas=3
    )
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}
