"""Playbook options and the rarer actions against the real control plane, driven through POST /webhook.

Aspects covered:

* a raise whose rollout fails (a ResourceQuota on `limits.memory` admits the one pod the pre-check tries,
  but not the rolling update's second new pod: the ReplicaSet reports FailedCreate): the verification
  reports it (a VERIFICATION notice, the ledger entry's result, a Warning Event, the failed counter);
* `raise_memory.revert_on_failure`: the same failed rollout writes the previous limit back and the old
  pods come back; a limit someone changed while the rollout was followed is not overwritten;
* `raise_memory.resize_in_place`: the running pod of an `OnDelete` StatefulSet (which the template change
  does not replace) gets the new limit through `pods/resize`, and completes when the kubelet reports it;
* `raise_memory.check_vpa`: a VerticalPodAutoscaler in `Auto` mode makes the raise skip (vpa_managed); one
  in `Off` mode does not (a minimal stand-in for the VPA CRD is installed for these tests);
* a `rollout_restart` playbook stamps `kubectl.kubernetes.io/restartedAt`, which rolls out a new
  ReplicaSet whose pods replace the old ones; a paused Deployment is refused.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kubernetes_asyncio import client

from responder.engine import verifying
from responder.models import decisions, notices
from tests.integration.mitigations.conftest import Responder
from tests.integration.mitigations.readback import ledger_of, memory_limit, oom_labels, read_deployment
from tests.kubeplane import incidents

pytestmark = pytest.mark.integration

VPA_CRD = "verticalpodautoscalers.autoscaling.k8s.io"


async def read_statefulset(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    return incidents.to_dict(api, await client.AppsV1Api(api).read_namespaced_stateful_set(name, namespace))


async def our_events(api: client.ApiClient, namespace: str) -> list[dict[str, Any]]:
    # Raw JSON: the generated model refuses the controllers' own Events, which have no eventTime.
    answer: Any = await client.EventsV1Api(api).list_namespaced_event(namespace, _preload_content=False)
    recorded = json.loads(await answer.read())["items"]
    return [e for e in recorded if e.get("reportingController") == "oom-responder"]


def raise_book(**options: Any) -> dict[str, Any]:
    return {"name": "oom-raise", "alerts": ["oom_killed"], "actions": [{"raise_memory": options}]}


def verifications(responder: Responder) -> list[notices.Notice]:
    return [n for n in responder.notifier.notices if n.kind is notices.NoticeKind.VERIFICATION]


async def deployment_with_a_quota_too_small_for_its_rollout(api: client.ApiClient, namespace: str) -> None:
    """Two pods limited to 128Mi under a 484Mi quota on limits.memory.

    The pre-check creates one pod at the raised 228Mi (2 × 128 + 228 = 484: admitted), and so does the
    rolling update's surge. But the second new pod needs 128 + 228 + 228 = 584Mi while one old pod still
    runs: the ReplicaSet's create is refused (FailedCreate) and the rollout never completes.
    """
    await incidents.create_deployment(api, namespace, "web", replicas=2)
    await incidents.wait_for_running_pods(api, namespace, selector="app=web", count=2)
    await incidents.create_resource_quota(api, namespace, hard={"limits.memory": "484Mi"})


async def test_a_raise_whose_rollout_fails_is_reported_as_failed_everywhere(
    kube_api: client.ApiClient, namespace: str, responder_factory: Any
) -> None:
    responder: Responder = await responder_factory(playbooks=[raise_book()])
    await deployment_with_a_quota_too_small_for_its_rollout(kube_api, namespace)
    labels = await oom_labels(kube_api, namespace, "web", 2)

    await responder.post("OOMKilled", labels)

    deployment = await read_deployment(kube_api, namespace, "web")
    assert memory_limit(deployment) == "228Mi"
    [entry] = ledger_of(deployment)
    assert (entry.from_value, entry.to_value) == ("128Mi", "228Mi")
    assert entry.result is decisions.Outcome.FAILED
    [verdict] = verifications(responder)
    assert verdict.outcome is decisions.Outcome.FAILED
    assert "exceeded quota" in verdict.detail
    assert "Reverted" not in verdict.detail
    assert responder.count("oom-raise", "raise_memory", "done") == 1
    assert responder.count("oom-raise", "raise_memory", "failed") == 1
    [event] = [e for e in await our_events(kube_api, namespace) if e["action"] == "verify"]
    assert event["type"] == "Warning"
    assert event["reason"].startswith("failed")
    assert "exceeded quota" in event["note"]
    assert event["regarding"]["kind"] == "Deployment" and event["regarding"]["name"] == "web"


async def test_a_raise_whose_rollout_fails_is_reverted_with_revert_on_failure(
    kube_api: client.ApiClient, namespace: str, responder_factory: Any
) -> None:
    responder: Responder = await responder_factory(playbooks=[raise_book(revert_on_failure=True)])
    await deployment_with_a_quota_too_small_for_its_rollout(kube_api, namespace)
    labels = await oom_labels(kube_api, namespace, "web", 2)

    await responder.post("OOMKilled", labels)

    deployment = await read_deployment(kube_api, namespace, "web")
    assert memory_limit(deployment) == "128Mi"
    [entry] = ledger_of(deployment)
    assert (entry.from_value, entry.to_value, entry.result) == ("128Mi", "228Mi", decisions.Outcome.FAILED)
    [verdict] = verifications(responder)
    assert verdict.outcome is decisions.Outcome.FAILED
    assert "Reverted to 128Mi" in verdict.detail
    assert responder.count("oom-raise", "raise_memory", "failed") == 1
    [event] = [e for e in await our_events(kube_api, namespace) if e["action"] == "verify"]
    assert "Reverted to 128Mi" in event["note"]

    async def back_to_the_old_limit() -> bool:
        pods = await incidents.wait_for_running_pods(kube_api, namespace, selector="app=web", count=2)
        return {p["spec"]["containers"][0]["resources"]["limits"]["memory"] for p in pods} == {"128Mi"}

    assert await incidents.wait_for(back_to_the_old_limit, timeout_seconds=60, what="the old pods back")


async def test_a_failed_raise_is_not_reverted_over_a_limit_someone_changed_meanwhile(
    kube_api: client.ApiClient, namespace: str, responder_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    responder: Responder = await responder_factory(playbooks=[raise_book(revert_on_failure=True)])
    await deployment_with_a_quota_too_small_for_its_rollout(kube_api, namespace)
    labels = await oom_labels(kube_api, namespace, "web", 2)
    follow = verifying.follow

    async def a_person_sets_the_limit_meanwhile(*args: Any, **kwargs: Any) -> verifying.Verdict:
        verdict = await follow(*args, **kwargs)
        # Someone fixes the limit by hand before the verdict is recorded (the hook only picks the moment: after
        # the failure was seen, so that their own rollout cannot make this one look complete).
        fix = {
            "spec": {
                "template": {
                    "spec": {"containers": [{"name": "app", "resources": {"limits": {"memory": "160Mi"}}}]}
                }
            }
        }
        await client.AppsV1Api(kube_api).patch_namespaced_deployment("web", namespace, fix)
        return verdict

    monkeypatch.setattr(verifying, "follow", a_person_sets_the_limit_meanwhile)

    await responder.post("OOMKilled", labels)

    deployment = await read_deployment(kube_api, namespace, "web")
    assert memory_limit(deployment) == "160Mi"
    [entry] = ledger_of(deployment)
    assert (entry.to_value, entry.result) == ("228Mi", decisions.Outcome.FAILED)
    [verdict] = verifications(responder)
    assert verdict.outcome is decisions.Outcome.FAILED
    assert "Not reverted" in verdict.detail


async def test_resize_in_place_raises_the_running_pod_of_an_on_delete_statefulset(
    kube_api: client.ApiClient, namespace: str, responder_factory: Any
) -> None:
    responder: Responder = await responder_factory(playbooks=[raise_book(resize_in_place=True)])
    await incidents.create_statefulset(kube_api, namespace, "db", replicas=1)
    # OnDelete: a template change reaches a pod only when it is deleted, so the running pod keeps its old
    # limit unless it is resized in place.
    await client.AppsV1Api(kube_api).patch_namespaced_stateful_set(
        "db",
        namespace,
        {"spec": {"updateStrategy": {"type": "OnDelete", "rollingUpdate": None}}},
        **incidents.MERGE_PATCH,
    )
    labels = await oom_labels(kube_api, namespace, "db", 1)
    [before] = await incidents.wait_for_running_pods(kube_api, namespace, selector="app=db", count=1)

    await responder.post("OOMKilled", labels)

    sts = await read_statefulset(kube_api, namespace, "db")
    assert memory_limit(sts) == "228Mi"
    assert ledger_of(sts)[0].to_value == "228Mi"
    [pod] = await incidents.wait_for_running_pods(kube_api, namespace, selector="app=db", count=1)
    assert pod["metadata"]["uid"] == before["metadata"]["uid"]
    resources = pod["spec"]["containers"][0]["resources"]
    # Only the limit moved: the request (and the CPU) are left as they were, so the QoS class holds.
    assert resources["limits"]["memory"] == "228Mi"
    assert resources["requests"] == {"memory": "64Mi", "cpu": "10m"}
    [action] = [n for n in responder.notifier.notices if n.kind is notices.NoticeKind.ACTION]
    assert f"pod {before['metadata']['name']} resized in place" in action.detail

    [verdict] = verifications(responder)
    assert verdict.outcome is decisions.Outcome.DONE, verdict.detail

    done = await incidents.complete_resize(kube_api, pod)
    assert done["status"]["containerStatuses"][0]["resources"]["limits"]["memory"] == "228Mi"


@pytest.fixture
async def vpa_crd(kube_api: client.ApiClient) -> AsyncIterator[None]:
    """A minimal stand-in for the VerticalPodAutoscaler CRD (autoscaling.k8s.io/v1): the shape the
    responder reads (spec.targetRef, spec.updatePolicy.updateMode), nothing validated."""
    extensions = client.ApiextensionsV1Api(kube_api)
    body: Any = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        # autoscaling.k8s.io is a protected group: a CRD in it must say whether the API was approved.
        "metadata": {
            "name": VPA_CRD,
            "annotations": {"api-approved.kubernetes.io": "unapproved, a stand-in for tests"},
        },
        "spec": {
            "group": "autoscaling.k8s.io",
            "scope": "Namespaced",
            "names": {
                "plural": "verticalpodautoscalers",
                "singular": "verticalpodautoscaler",
                "kind": "VerticalPodAutoscaler",
                "shortNames": ["vpa"],
            },
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                    },
                }
            ],
        },
    }
    await extensions.create_custom_resource_definition(body)

    async def established() -> bool:
        crd = await extensions.read_custom_resource_definition(VPA_CRD)
        return any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or [])

    await incidents.wait_for(established, what="the VPA CRD to be established")
    yield
    await extensions.delete_custom_resource_definition(VPA_CRD)

    async def gone() -> bool:
        try:
            await extensions.read_custom_resource_definition(VPA_CRD)
        except client.exceptions.ApiException as e:
            return e.status == 404
        return False

    await incidents.wait_for(gone, what="the VPA CRD to be deleted")


async def create_vpa(api: client.ApiClient, namespace: str, target: str, *, update_mode: str) -> None:
    body: Any = {
        "apiVersion": "autoscaling.k8s.io/v1",
        "kind": "VerticalPodAutoscaler",
        "metadata": {"name": target},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "updatePolicy": {"updateMode": update_mode},
        },
    }
    await client.CustomObjectsApi(api).create_namespaced_custom_object(
        "autoscaling.k8s.io", "v1", namespace, "verticalpodautoscalers", body
    )


@pytest.mark.usefixtures("vpa_crd")
async def test_a_vpa_in_auto_mode_makes_the_raise_skip(
    kube_api: client.ApiClient, namespace: str, responder_factory: Any
) -> None:
    responder: Responder = await responder_factory()
    await incidents.create_deployment(kube_api, namespace, "web", replicas=1)
    await create_vpa(kube_api, namespace, "web", update_mode="Auto")
    labels = await oom_labels(kube_api, namespace, "web", 1)
    before = await read_deployment(kube_api, namespace, "web")

    await responder.post("OOMKilled", labels)

    after = await read_deployment(kube_api, namespace, "web")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert memory_limit(after) == "128Mi"
    [refusal] = [n for n in responder.notifier.notices if n.reason is decisions.Reason.VPA_MANAGED]
    assert "updateMode Auto" in refusal.detail
    assert responder.count("oom-raise-memory", "raise_memory", "skipped") == 1
    assert responder.count("oom-raise-memory", "raise_memory", "done") == 0
    assert [e["reason"] for e in await our_events(kube_api, namespace)] == ["skipped:vpa_managed"]


@pytest.mark.usefixtures("vpa_crd")
async def test_a_vpa_in_off_mode_does_not_stop_the_raise(
    kube_api: client.ApiClient, namespace: str, responder_factory: Any
) -> None:
    responder: Responder = await responder_factory()
    await incidents.create_deployment(kube_api, namespace, "web", replicas=1)
    await create_vpa(kube_api, namespace, "web", update_mode="Off")
    labels = await oom_labels(kube_api, namespace, "web", 1)

    await responder.post("OOMKilled", labels)

    deployment = await read_deployment(kube_api, namespace, "web")
    assert memory_limit(deployment) == "228Mi"
    assert responder.count("oom-raise-memory", "raise_memory", "done") == 1
    assert not any(n.reason is decisions.Reason.VPA_MANAGED for n in responder.notifier.notices)


RESTART_BOOK = {"name": "restart", "alerts": ["memory_high"], "actions": ["rollout_restart"]}
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


async def test_a_rollout_restart_rolls_out_a_new_replicaset_with_the_restart_stamp(
    kube_api: client.ApiClient, namespace: str, responder_factory: Any
) -> None:
    responder: Responder = await responder_factory(playbooks=[RESTART_BOOK])
    await incidents.create_deployment(kube_api, namespace, "web", replicas=2)
    before = await incidents.wait_for_running_pods(kube_api, namespace, selector="app=web", count=2)

    await responder.post("PodMemoryHigh", {"namespace": namespace, "pod": before[0]["metadata"]["name"]})

    deployment = await read_deployment(kube_api, namespace, "web")
    stamp = deployment["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT]
    [entry] = ledger_of(deployment)
    assert (entry.action.value, entry.from_value, entry.to_value) == ("rollout_restart", None, stamp)
    assert entry.result is decisions.Outcome.DONE
    sets = await client.AppsV1Api(kube_api).list_namespaced_replica_set(namespace, label_selector="app=web")
    assert len(sets.items) == 2
    [current] = [rs for rs in sets.items if (rs.spec.template.metadata.annotations or {}).get(RESTARTED_AT)]
    assert current.spec.replicas == 2
    after = await incidents.wait_for_running_pods(kube_api, namespace, selector="app=web", count=2)
    assert not {p["metadata"]["uid"] for p in after} & {p["metadata"]["uid"] for p in before}
    assert {p["metadata"]["annotations"][RESTARTED_AT] for p in after} == {stamp}
    [verdict] = verifications(responder)
    assert verdict.outcome is decisions.Outcome.DONE
    assert responder.count("restart", "rollout_restart", "done") == 1
    assert {e["action"] for e in await our_events(kube_api, namespace)} == {"rollout_restart", "verify"}


async def test_a_rollout_restart_of_a_paused_deployment_is_refused(
    kube_api: client.ApiClient, namespace: str, responder_factory: Any
) -> None:
    responder: Responder = await responder_factory(playbooks=[RESTART_BOOK])
    await incidents.create_deployment(kube_api, namespace, "web", replicas=1)
    [pod] = await incidents.wait_for_running_pods(kube_api, namespace, selector="app=web", count=1)
    await client.AppsV1Api(kube_api).patch_namespaced_deployment(
        "web", namespace, {"spec": {"paused": True}}, **incidents.MERGE_PATCH
    )

    async def pause_observed() -> dict[str, Any] | None:
        # The deployment controller answers a pause with a status write (Progressing: DeploymentPaused).
        deployment = await read_deployment(kube_api, namespace, "web")
        status = deployment["status"]
        paused = any(c.get("reason") == "DeploymentPaused" for c in status.get("conditions") or [])
        observed = status.get("observedGeneration") == deployment["metadata"]["generation"]
        return deployment if paused and observed else None

    before = await incidents.wait_for(pause_observed, what="the controller to observe the pause")

    await responder.post("PodMemoryHigh", {"namespace": namespace, "pod": pod["metadata"]["name"]})

    after = await read_deployment(kube_api, namespace, "web")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert RESTARTED_AT not in (after["spec"]["template"]["metadata"].get("annotations") or {})
    [refusal] = [n for n in responder.notifier.notices if n.reason is decisions.Reason.PAUSED_ROLLOUT]
    assert refusal.action is not None and refusal.action.value == "rollout_restart"
    assert responder.count("restart", "rollout_restart", "skipped") == 1
