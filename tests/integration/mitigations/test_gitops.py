"""Workloads a GitOps controller owns, against the real control plane, driven through POST /webhook.

Aspects covered:

* a Deployment carrying Argo CD's tracking annotation, OOM-killed, with the default `gitops: act`: the limit
  is raised, and the notice and the Event name the Argo CD Application that will revert it and the value to
  commit;
* a Deployment carrying Flux's Kustomization labels with `gitops: recommend`: nothing is written (same
  resourceVersion), the refusal says `gitops_managed` with the value to commit, in the notice, the metric and
  a Kubernetes Event, and the playbook's escalation still goes out.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes_asyncio import client

from responder.models import decisions, notices
from tests.integration.mitigations.conftest import Responder
from tests.integration.mitigations.readback import memory_limit, oom_labels, read_deployment
from tests.kubeplane import incidents

pytestmark = pytest.mark.integration


async def our_events(api: client.ApiClient, namespace: str) -> list[dict[str, Any]]:
    answer: Any = await client.EventsV1Api(api).list_namespaced_event(namespace, _preload_content=False)
    recorded = json.loads(await answer.read())["items"]
    return [e for e in recorded if e.get("reportingController") == "oom-responder"]


async def test_an_argo_cd_owned_deployment_is_raised_and_the_notice_says_what_to_commit(
    kube_api: client.ApiClient, namespace: str, responder_factory: Any
) -> None:
    responder: Responder = await responder_factory()
    tracking = f"shop-web:apps/Deployment:{namespace}/web"
    await incidents.create_deployment(
        kube_api, namespace, "web", replicas=1, annotations={"argocd.argoproj.io/tracking-id": tracking}
    )
    labels = await oom_labels(kube_api, namespace, "web", 1)

    await responder.post("OOMKilled", labels)

    assert memory_limit(await read_deployment(kube_api, namespace, "web")) == "228Mi"
    [done] = [n for n in responder.notifier.notices if n.kind is notices.NoticeKind.ACTION]
    assert "Argo CD Application shop-web manages this workload and will revert" in done.detail
    assert "commit resources.limits.memory=228Mi for container 'app' to its source" in done.detail
    notes = [e["note"] for e in await our_events(kube_api, namespace) if e["reason"].startswith("done")]
    assert any("commit resources.limits.memory=228Mi" in note for note in notes), notes


async def test_a_flux_owned_deployment_with_recommend_is_not_written_and_a_human_is_told(
    kube_api: client.ApiClient, namespace: str, responder_factory: Any
) -> None:
    book = {
        "name": "oom-recommend",
        "alerts": ["oom_killed"],
        "gitops": "recommend",
        "actions": ["raise_memory", {"escalate": {"message": "commit the new limit"}}],
    }
    responder: Responder = await responder_factory(playbooks=[book])
    flux = {
        "kustomize.toolkit.fluxcd.io/name": "apps",
        "kustomize.toolkit.fluxcd.io/namespace": "flux-system",
    }
    await incidents.create_deployment(kube_api, namespace, "web", replicas=1, labels=flux)
    labels = await oom_labels(kube_api, namespace, "web", 1)
    before = await read_deployment(kube_api, namespace, "web")

    await responder.post("OOMKilled", labels)

    after = await read_deployment(kube_api, namespace, "web")
    # Nothing written by the service: the spec and its annotations are as they were. (The resourceVersion is no
    # proof either way: the Deployment controller writes status while the new pod comes up.)
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"] == before["spec"]
    assert "oom-responder.io/ledger" not in (after["metadata"].get("annotations") or {})
    assert memory_limit(after) == "128Mi"
    [refusal] = [n for n in responder.notifier.notices if n.reason is decisions.Reason.GITOPS_MANAGED]
    assert "Flux Kustomization flux-system/apps manages this workload" in refusal.detail
    assert "commit resources.limits.memory=228Mi for container 'app' to its source" in refusal.detail
    assert responder.count("oom-recommend", "raise_memory", "skipped") == 1
    assert responder.count("oom-recommend", "raise_memory", "done") == 0
    assert responder.count("oom-recommend", "escalate", "escalated") == 1
    assert any(n.kind is notices.NoticeKind.ESCALATION for n in responder.notifier.notices)
    assert "skipped:gitops_managed" in [e["reason"] for e in await our_events(kube_api, namespace)]
