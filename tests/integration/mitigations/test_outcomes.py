"""What the on-call engineer reads must be true: outcomes, reasons and escalations, on the real control plane.

Covers (each failed before its fix):

* at its ceiling, an OOM-killed workload pages a human: a `ceiling` guardrail block, counted, an escalation
  notice and a Warning Event `blocked:ceiling`;
* an identity without `create pods` is told as RBAC (`forbidden`), not as a quota refusal, in the notice, the
  Event and the metric;
* restarts that are not OOM kills (exit code 1) are not scaled out: diagnostics and escalation only, and the
  refusal says why;
* a scale-out through an HPA's floor is verified against the new count (3 of 3), not the old one, and the
  verification notice carries its reason;
* nothing is written into a namespace the service is told to leave alone, not even an Event.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client

from responder.kube import permissions
from responder.models import decisions, notices, settings
from tests.integration.mitigations.conftest import Responder
from tests.integration.mitigations.readback import memory_limit, oom_labels, read_deployment
from tests.kubeplane import incidents

pytestmark = pytest.mark.integration


async def _our_events(kube_api: client.ApiClient, namespace: str) -> list[dict[str, Any]]:
    # Raw JSON: the generated model refuses the controllers' own Events, which have no eventTime.
    answer = await client.EventsV1Api(kube_api).list_namespaced_event(namespace, _preload_content=False)
    recorded: list[dict[str, Any]] = json.loads(await answer.read())["items"]
    return [e for e in recorded if e.get("reportingController") == "oom-responder"]


async def test_at_its_ceiling_an_oom_killed_workload_pages_a_human(
    kube_api: client.ApiClient, namespace: str, responder_factory: Any
) -> None:
    responder: Responder = await responder_factory()
    await incidents.create_deployment(kube_api, namespace, "web", replicas=1)
    await client.AppsV1Api(kube_api).patch_namespaced_deployment(
        "web", namespace, {"metadata": {"annotations": {"oom-responder.io/max-memory": "128Mi"}}}
    )
    labels = await oom_labels(kube_api, namespace, "web", 1)

    await responder.post("OOMKilled", labels)

    assert memory_limit(await read_deployment(kube_api, namespace, "web")) == "128Mi"
    [blocked] = [n for n in responder.notifier.notices if n.outcome is decisions.Outcome.BLOCKED]
    assert (blocked.kind, blocked.guardrail) == (notices.NoticeKind.ESCALATION, decisions.Guardrail.CEILING)
    assert "128Mi" in blocked.detail
    sample = responder.metrics.registry.get_sample_value(
        "oom_responder_guardrail_blocks_total", {"guardrail": "ceiling"}
    )
    assert sample == 1
    [event] = await _our_events(kube_api, namespace)
    assert (event["reason"], event["type"]) == ("blocked:ceiling", "Warning")


def _rules_without(config: settings.Settings, *, resource: str, verb: str) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for permission in permissions.needed(config):
        if (permission.resource, permission.subresource, permission.verb) == (resource, "", verb):
            continue
        name = (
            f"{permission.resource}/{permission.subresource}"
            if permission.subresource
            else permission.resource
        )
        rules.append({"apiGroups": [permission.group], "resources": [name], "verbs": [permission.verb]})
    return rules


async def test_an_identity_without_create_pods_is_told_as_rbac_not_as_a_quota(
    kube_api: client.ApiClient,
    namespace: str,
    responder_factory: Any,
    service_account_kubeconfig: Any,
) -> None:
    rules = _rules_without(settings.Settings(), resource="pods", verb="create")
    kubeconfig: Path = service_account_kubeconfig(namespace, rules, cluster=True, name="no-pod-create")
    responder: Responder = await responder_factory(kubernetes={"kubeconfig": str(kubeconfig)})
    await incidents.create_deployment(kube_api, namespace, "web", replicas=1)
    labels = await oom_labels(kube_api, namespace, "web", 1)

    await responder.post("OOMKilled", labels)

    assert memory_limit(await read_deployment(kube_api, namespace, "web")) == "128Mi"
    [failed] = [n for n in responder.notifier.notices if n.outcome is decisions.Outcome.FAILED]
    assert failed.reason is decisions.Reason.FORBIDDEN
    assert "cannot create resource" in failed.detail
    [event] = await _our_events(kube_api, namespace)
    assert event["reason"] == "failed:forbidden"
    assert responder.count("oom-raise-memory", "raise_memory", "failed") == 1


async def test_restarts_that_are_not_oom_kills_are_not_scaled_out_and_reach_a_human(
    kube_api: client.ApiClient, namespace: str, responder_factory: Any
) -> None:
    responder: Responder = await responder_factory()
    await incidents.create_deployment(kube_api, namespace, "web", replicas=1)
    [pod] = await incidents.wait_for_running_pods(kube_api, namespace, selector="app=web", count=1)
    await incidents.mark_restarted(kube_api, pod, reason="Error", exit_code=1)

    await responder.post("PodRestartingFrequently", {"namespace": namespace, "pod": pod["metadata"]["name"]})

    assert (await read_deployment(kube_api, namespace, "web"))["spec"]["replicas"] == 1
    [skipped] = [n for n in responder.notifier.notices if n.outcome is decisions.Outcome.SKIPPED]
    assert skipped.reason is decisions.Reason.NOT_OOM_KILLED
    assert "exit code 1 (Error)" in skipped.detail
    assert [n.kind for n in responder.notifier.notices].count(notices.NoticeKind.ESCALATION) == 1
    diagnostics = [n for n in responder.notifier.notices if n.action is settings.Action.CAPTURE_DIAGNOSTICS]
    assert diagnostics and "exit 1" in diagnostics[0].detail


async def test_a_scale_out_through_an_hpa_is_verified_against_the_new_count(
    kube_api: client.ApiClient, namespace: str, responder_factory: Any
) -> None:
    responder: Responder = await responder_factory(verification={"timeout_seconds": 90})
    deployment = await incidents.create_deployment(kube_api, namespace, "web", replicas=2)
    await incidents.create_hpa(kube_api, namespace, deployment, min_replicas=2, max_replicas=5)
    pods = await incidents.wait_for_running_pods(kube_api, namespace, selector="app=web", count=2)

    await responder.post("PodMemoryHigh", {"namespace": namespace, "pod": pods[0]["metadata"]["name"]})

    [verification] = [n for n in responder.notifier.notices if n.kind is notices.NoticeKind.VERIFICATION]
    assert (verification.outcome, verification.reason) == (
        decisions.Outcome.DONE,
        decisions.Reason.ROLLOUT_COMPLETE,
    )
    assert verification.detail.startswith("3 of 3 replicas")
    after = await read_deployment(kube_api, namespace, "web")
    assert after["spec"]["replicas"] == 3 and after["status"]["availableReplicas"] == 3


async def test_nothing_is_written_into_an_excluded_namespace_not_even_an_event(
    kube_api: client.ApiClient, namespace: str, responder_factory: Any
) -> None:
    responder: Responder = await responder_factory(guardrails={"namespaces_exclude": [namespace]})
    await incidents.create_deployment(kube_api, namespace, "web", replicas=1)
    labels = await oom_labels(kube_api, namespace, "web", 1)
    before = await read_deployment(kube_api, namespace, "web")

    await responder.post("OOMKilled", labels)

    [blocked] = [n for n in responder.notifier.notices if n.outcome is decisions.Outcome.BLOCKED]
    assert blocked.guardrail is decisions.Guardrail.NAMESPACE
    assert await _our_events(kube_api, namespace) == []
    after = await read_deployment(kube_api, namespace, "web")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


async def test_a_refusal_repeated_by_alertmanager_is_notified_once_and_counted(
    kube_api: client.ApiClient, namespace: str, responder_factory: Any
) -> None:
    responder: Responder = await responder_factory()
    await incidents.create_deployment(kube_api, namespace, "web", replicas=1)
    labels = await oom_labels(kube_api, namespace, "web", 1)
    await incidents.create_resource_quota(kube_api, namespace, hard={"limits.memory": "200Mi"})

    for starts_at in ("2026-03-01T11:00:00Z", "2026-03-01T11:05:00Z", "2026-03-01T11:10:00Z"):
        assert (await responder.post("OOMKilled", labels, starts_at=starts_at))["accepted"] == 1

    refusals = [n for n in responder.notifier.notices if n.reason is decisions.Reason.QUOTA_REFUSED]
    assert len(refusals) == 1
    assert responder.count("oom-raise-memory", "raise_memory", "failed") == 3
    events = [e for e in await _our_events(kube_api, namespace) if e["reason"] == "failed:quota_refused"]
    assert len(events) == 1
