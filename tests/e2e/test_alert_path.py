"""The whole alert path on real parts: the shipped rules fire on what kube-state-metrics and the (kwok) kubelets
export, Alertmanager routes with the example route, ``oom-responder serve`` mitigates, and the alert resolves.

Rule time runs ``stack.TIME_SCALE`` times faster than wall time (durations of a test-only copy of
config/alert-rules.yaml divided, range windows kept at least ``stack.MIN_WINDOW_SECONDS`` long, expressions
otherwise as shipped). Each scenario checks: the alert fires in Prometheus from the real rule; the webhook
payload reaching the service carries namespace, pod, container and severity; exactly one mitigation is written
(the workload's ledger), or none where the service must not act; the alert resolves, the resolution reaches the
service, and the Slack stand-in gets the resolved notice in the incident's thread.

Covers:
* PodMemoryHigh: a container's working set climbs past 80 % of its limit → scaled out → the load spreads over
  two pods → resolved;
* OOMKilled: a container is marked OOMKilled with a restart → its memory limit is raised once (128Mi → 228Mi)
  → the rollout replaces the pod → resolved;
* PodRestartingFrequently: two crashes (exit code 1) within the (shortened) hour → the playbook's scale-out is
  refused (not an OOM kill: more replicas would multiply a crash loop), diagnostics and escalation go out, nothing
  is written → resolved once the window passes without restarts;
* PodMemoryTrendingToOOM: a leak, well below 80 %, heading for the limit within the (shortened) 4 hours for the
  (shortened) hour → the memory-high playbook scales out; the memory analysis, reading this Prometheus, names
  the workload's pattern (linear leak, from its previous pod's hours of history, backfilled) → the fix ships
  (a rollout without the leak) → resolved.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
import pytest
from kubernetes_asyncio import client

from responder.logic import analysing
from responder.models import analyses, ledgers, settings
from responder.prometheus import reading
from tests.e2e import histories
from tests.e2e import stack as stack_mod
from tests.integration.mitigations.readback import ledger_of, memory_limit, read_deployment
from tests.kubeplane import incidents
from tests.kubeplane.plane import KubePlane
from tests.slackstub import server as slack_server

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

T = TypeVar("T")

#: A bound for each step (not a measurement): rule holds are seconds, but the machine is shared.
STEP_SECONDS = 120.0

#: kwok's annotation for a container's working set (tests/kubeplane/kwok-metrics.yaml).
USAGE = "kwok.x-k8s.io/usage-memory"
#: Added to the working set per second since the pod started: a leak.
GROWTH = "oom-responder.test/usage-memory-growth-per-second"

MI = 2**20

#: What the service reads from every alert (AlertsSettings' default label names).
NEEDED_LABELS = ("namespace", "pod", "container", "severity")


async def _until(
    stack: stack_mod.Stack,
    probe: Callable[[], T | Awaitable[T | None] | None],
    what: str,
    *,
    seconds: float = STEP_SECONDS,
) -> T:
    """Poll ``probe`` (plain or async) until it returns something truthy; fail naming ``what``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        stack.check_alive()
        value = probe()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {seconds:.0f}s\n{stack.describe()}")
        await asyncio.sleep(0.5)


def _delivered(stack: stack_mod.Stack, alertname: str, pod: str, status: str) -> list[dict[str, Any]]:
    """Alerts named ``alertname`` for ``pod`` with ``status`` in the payloads the service accepted."""
    return [
        alert
        for delivery in list(stack.tap.deliveries)
        if delivery.status == 202
        for alert in delivery.payload.get("alerts", [])
        if alert["labels"].get("alertname") == alertname
        and alert["labels"].get("pod") == pod
        and alert["status"] == status
    ]


async def _firing_in_prometheus(
    stack: stack_mod.Stack, session: aiohttp.ClientSession, alertname: str, pod: str
) -> dict[str, Any] | None:
    for alert in await stack.prometheus_alerts(session):
        if (
            alert["labels"].get("alertname") == alertname
            and alert["labels"].get("pod") == pod
            and alert["state"] == "firing"
        ):
            return alert
    return None


def _assert_labels_arrive(alert: dict[str, Any], *, namespace: str, pod: str, severity: str) -> None:
    labels = alert["labels"]
    assert {name: labels.get(name) for name in NEEDED_LABELS} == {
        "namespace": namespace,
        "pod": pod,
        "container": "app",
        "severity": severity,
    }
    assert alert["annotations"]["summary"] and alert["annotations"]["runbook_url"]


def _incident_thread(
    slack: slack_server.SlackStub, alertname: str, namespace: str
) -> list[slack_server.Posted]:
    """The first message about ``alertname`` in ``namespace`` and its thread's replies."""
    for posted in slack.top_level():
        if alertname in (posted.text or "") and namespace in json.dumps(posted.blocks):
            return [posted, *slack.in_thread(posted.ts)]
    return []


async def _resolved_notice(
    stack: stack_mod.Stack, alertname: str, namespace: str
) -> list[slack_server.Posted] | None:
    thread = _incident_thread(stack.slack, alertname, namespace)
    if any(f"{alertname} · resolved" in (posted.text or "") for posted in thread[1:]):
        return thread
    return None


def _action_notices(stack: stack_mod.Stack, namespace: str) -> list[dict[str, Any]]:
    """The service's log lines announcing a mitigation in ``namespace``."""
    return [
        record
        for record in stack.service_records()
        if record.get("notice") == "action" and str(record.get("target", "")).startswith(f"{namespace}/")
    ]


async def _annotate_pod(
    api: client.ApiClient, pod: dict[str, Any], annotations: dict[str, str | None]
) -> None:
    body: Any = {"metadata": {"annotations": annotations}}
    meta = pod["metadata"]
    await client.CoreV1Api(api).patch_namespaced_pod(
        meta["name"], meta["namespace"], body, **incidents.MERGE_PATCH
    )


async def _memory_limit(
    stack: stack_mod.Stack, session: aiohttp.ClientSession, pod: str
) -> list[dict[str, Any]]:
    return await stack.query(session, f'kube_pod_container_resource_limits{{pod="{pod}", resource="memory"}}')


async def _restarts(stack: stack_mod.Stack, session: aiohttp.ClientSession, pod: str) -> list[dict[str, Any]]:
    return await stack.query(session, f'kube_pod_container_status_restarts_total{{pod="{pod}"}}')


async def _working_set(stack: stack_mod.Stack, session: aiohttp.ClientSession, pod: str) -> float | None:
    # Selected as kube-prometheus-stack's dashboards and the service's analysis select cAdvisor's series.
    result = await stack.query(
        session, f'container_memory_working_set_bytes{{pod="{pod}", container="app", image!=""}}'
    )
    return float(result[0]["value"][1]) if result else None


async def _fires_and_reaches_the_service(
    stack: stack_mod.Stack,
    session: aiohttp.ClientSession,
    *,
    alertname: str,
    namespace: str,
    pod: str,
    severity: str,
    seconds: float = STEP_SECONDS,
) -> dict[str, Any]:
    """Wait for the rule to fire in Prometheus and Alertmanager to deliver it; check the labels. The alert as
    Prometheus reports it."""
    firing = await _until(
        stack,
        lambda: _firing_in_prometheus(stack, session, alertname, pod),
        f"{alertname} to fire",
        seconds=seconds,
    )
    [delivered, *_] = await _until(
        stack, lambda: _delivered(stack, alertname, pod, "firing"), f"{alertname} to reach the service"
    )
    _assert_labels_arrive(delivered, namespace=namespace, pod=pod, severity=severity)
    return firing


async def _mitigated_once(
    stack: stack_mod.Stack, api: client.ApiClient, namespace: str, name: str
) -> ledgers.LedgerEntry:
    """Wait for the Deployment's ledger to record the mitigation; there must be exactly one."""

    async def written() -> list[ledgers.LedgerEntry]:
        return ledger_of(await read_deployment(api, namespace, name))

    [entry] = await _until(stack, written, f"a mitigation of {namespace}/{name}")
    return entry


async def _resolves_with_a_notice(
    stack: stack_mod.Stack, *, alertname: str, namespace: str, pod: str
) -> None:
    """Wait for the resolution to reach the service and its notice to reach Slack in the incident's thread."""
    await _until(stack, lambda: _delivered(stack, alertname, pod, "resolved"), f"{alertname} to resolve")
    await _until(
        stack, lambda: _resolved_notice(stack, alertname, namespace), f"the resolved notice of {alertname}"
    )


def _assert_one_mitigation(
    stack: stack_mod.Stack,
    deployment: dict[str, Any],
    action: settings.Action,
) -> None:
    """One write in the workload's ledger, and one announcement of it."""
    namespace = deployment["metadata"]["namespace"]
    assert [entry.action for entry in ledger_of(deployment)] == [action]
    assert [record["action"] for record in _action_notices(stack, namespace)] == [action.value]


async def _verified(stack: stack_mod.Stack, namespace: str) -> list[dict[str, Any]]:
    return [
        record
        for record in stack.service_records()
        if record.get("notice") == "verification"
        and str(record.get("target", "")).startswith(f"{namespace}/")
    ]


async def test_memory_high_fires_from_the_rule_scales_out_and_resolves_as_the_load_spreads(
    e2e_stack: stack_mod.Stack, e2e_namespace: str, kube_api: client.ApiClient
) -> None:
    stack, namespace = e2e_stack, e2e_namespace
    await incidents.create_deployment(
        kube_api, namespace, "busy", replicas=1, pod_annotations={USAGE: "40Mi"}
    )
    [pod] = await incidents.wait_for_running_pods(kube_api, namespace, selector="app=busy", count=1)
    name = pod["metadata"]["name"]
    async with aiohttp.ClientSession() as session:
        # The kubelet series (kwok) and the limit (kube-state-metrics) are what the rule divides.
        await _until(stack, lambda: _working_set(stack, session, name), "the pod's working set in Prometheus")
        await _annotate_pod(kube_api, pod, {USAGE: "110Mi"})  # 86 % of 128Mi: warning, not critical
        await _fires_and_reaches_the_service(
            stack, session, alertname="PodMemoryHigh", namespace=namespace, pod=name, severity="warning"
        )
        entry = await _mitigated_once(stack, kube_api, namespace, "busy")
        assert (entry.action, entry.playbook, entry.from_value, entry.to_value) == (
            settings.Action.SCALE_OUT,
            "memory-high-scale-out",
            "1",
            "2",
        )
        await incidents.wait_for_running_pods(kube_api, namespace, selector="app=busy", count=2)

        # Two pods share the load: the hot one's working set falls back to half.
        await _annotate_pod(kube_api, pod, {USAGE: "55Mi"})
        await _resolves_with_a_notice(stack, alertname="PodMemoryHigh", namespace=namespace, pod=name)

    deployment = await read_deployment(kube_api, namespace, "busy")
    assert deployment["spec"]["replicas"] == 2
    _assert_one_mitigation(stack, deployment, settings.Action.SCALE_OUT)


async def test_oom_killed_raises_the_limit_once_and_resolves_after_the_window(
    e2e_stack: stack_mod.Stack, e2e_namespace: str, kube_api: client.ApiClient
) -> None:
    stack, namespace = e2e_stack, e2e_namespace
    await incidents.create_deployment(kube_api, namespace, "hungry", replicas=1)
    [pod] = await incidents.wait_for_running_pods(kube_api, namespace, selector="app=hungry", count=1)
    name = pod["metadata"]["name"]
    async with aiohttp.ClientSession() as session:
        [limit] = await _until(
            stack, lambda: _memory_limit(stack, session, name), "the pod's limit in Prometheus"
        )
        assert float(limit["value"][1]) == 128 * MI
        # The rule sees a kill as the restart counter going up: Prometheus must have scraped it at 0 first.
        # (kube-state-metrics exports the limit from the spec at once, the counter only once kwok reports the
        # container running.)
        await _until(
            stack, lambda: _restarts(stack, session, name), "the pod's restart counter in Prometheus"
        )

        await incidents.mark_oom_killed(kube_api, pod)
        await _fires_and_reaches_the_service(
            stack, session, alertname="OOMKilled", namespace=namespace, pod=name, severity="critical"
        )
        entry = await _mitigated_once(stack, kube_api, namespace, "hungry")
        assert (entry.action, entry.from_value, entry.to_value, entry.container) == (
            settings.Action.RAISE_MEMORY,
            "128Mi",
            "228Mi",
            "app",
        )
        await _resolves_with_a_notice(stack, alertname="OOMKilled", namespace=namespace, pod=name)

        # The rollout replaced the pod, and kube-state-metrics reports the new one's raised limit.
        [new_pod] = await incidents.wait_for_running_pods(kube_api, namespace, selector="app=hungry", count=1)
        new_name = new_pod["metadata"]["name"]
        assert new_name != name
        [limit] = await _until(stack, lambda: _memory_limit(stack, session, new_name), "the new pod's limit")
        assert float(limit["value"][1]) == 228 * MI

    deployment = await read_deployment(kube_api, namespace, "hungry")
    assert memory_limit(deployment) == "228Mi"
    _assert_one_mitigation(stack, deployment, settings.Action.RAISE_MEMORY)


async def test_two_restarts_within_the_hour_fire_pod_restarting_frequently(
    e2e_stack: stack_mod.Stack, e2e_namespace: str, kube_api: client.ApiClient
) -> None:
    stack, namespace = e2e_stack, e2e_namespace
    await incidents.create_deployment(kube_api, namespace, "crashy", replicas=1)
    [pod] = await incidents.wait_for_running_pods(kube_api, namespace, selector="app=crashy", count=1)
    name = pod["metadata"]["name"]
    async with aiohttp.ClientSession() as session:

        async def restarts() -> list[dict[str, Any]]:
            return await _restarts(stack, session, name)

        await _until(stack, restarts, "the pod's restart counter in Prometheus")
        # Crashes, not OOM kills: only PodRestartingFrequently may fire. The second one only once Prometheus has
        # scraped the first, as two real restarts would be seen.
        await incidents.mark_restarted(kube_api, pod, reason="Error", exit_code=1)

        async def first_restart_scraped() -> bool:
            return any(float(r["value"][1]) == 1 for r in await restarts())

        await _until(stack, first_restart_scraped, "the first restart in Prometheus")
        await incidents.mark_restarted(kube_api, pod, reason="Error", exit_code=1)
        await _fires_and_reaches_the_service(
            stack,
            session,
            alertname="PodRestartingFrequently",
            namespace=namespace,
            pod=name,
            severity="warning",
        )
        # Crashes are not a memory incident: more replicas would multiply the crash loop, so the playbook's
        # scale-out is refused with the reason, and the diagnostics and the page to humans go out.
        await _until(
            stack,
            lambda: [
                r
                for r in stack.service_records()
                if r.get("reason") == "not_oom_killed"
                and r.get("outcome") == "skipped"
                and namespace in str(r)
            ],
            "the scale-out refused: not an OOM kill",
        )
        await _until(
            stack,
            lambda: [
                r for r in stack.service_records() if r.get("notice") == "escalation" and namespace in str(r)
            ],
            "the escalation",
        )
        # Resolves once the (shortened) hour passes without another restart.
        await _resolves_with_a_notice(
            stack, alertname="PodRestartingFrequently", namespace=namespace, pod=name
        )
        assert _delivered(stack, "OOMKilled", name, "firing") == []

    deployment = await read_deployment(kube_api, namespace, "crashy")
    assert deployment["spec"]["replicas"] == 1
    assert ledger_of(deployment) == []
    assert [record["action"] for record in _action_notices(stack, namespace)] == ["capture_diagnostics"]


async def test_a_leak_fires_the_trend_alert_before_memory_is_high_and_the_fix_resolves_it(
    e2e_stack: stack_mod.Stack,
    leak_history: histories.LeakHistory,
    kube_plane: KubePlane,
    kube_api: client.ApiClient,
) -> None:
    stack, namespace = e2e_stack, leak_history.namespace
    # The namespace whose Deployment's previous pod leaked for hours (backfilled into Prometheus).
    kube_plane.create_namespace(namespace)
    try:
        await _leak_scenario(stack, namespace, leak_history.deployment, kube_api)
    finally:
        kube_plane.delete_namespace(namespace)


async def _leak_scenario(
    stack: stack_mod.Stack, namespace: str, deployment_name: str, kube_api: client.ApiClient
) -> None:
    # 24Mi + 0.4Mi/s towards 128Mi: the limit is within the (scaled) 4 hours after ~20 s, 80 % only after ~200 s.
    await incidents.create_deployment(
        kube_api, namespace, deployment_name, replicas=1, pod_annotations={USAGE: "24Mi", GROWTH: "0.4Mi"}
    )
    [pod] = await incidents.wait_for_running_pods(
        kube_api, namespace, selector=f"app={deployment_name}", count=1
    )
    name = pod["metadata"]["name"]
    async with aiohttp.ClientSession() as session:
        await _fires_and_reaches_the_service(
            stack,
            session,
            alertname="PodMemoryTrendingToOOM",
            namespace=namespace,
            pod=name,
            severity="warning",
            seconds=STEP_SECONDS + 60,  # the hold is a (scaled) hour
        )
        # Fired on the trend alone: the working set is still below PodMemoryHigh's 80 %.
        working_set = await _working_set(stack, session, name)
        assert working_set is not None and working_set < 0.8 * 128 * MI
        assert await _firing_in_prometheus(stack, session, "PodMemoryHigh", name) is None

        entry = await _mitigated_once(stack, kube_api, namespace, deployment_name)
        assert (entry.action, entry.playbook, entry.to_value) == (
            settings.Action.SCALE_OUT,
            "memory-high-scale-out",
            "2",
        )
        await _until(stack, lambda: _verified(stack, namespace), "the scale-out to be verified")

        # The memory analysis, run against this Prometheus, names the pattern from the workload's history.
        reader = reading.Reader(settings.PrometheusSettings(url=stack.prometheus_url, timeout_seconds=30))
        try:
            analysis = await reading.investigate(
                reader,
                namespace=namespace,
                kind="Deployment",
                name=deployment_name,
                container="app",
                now=time.time(),
            )
        finally:
            await reader.close()
        assert analysis.pattern is analyses.Pattern.LINEAR_LEAK, analysis.reason
        assert analysing.summarize(analysis).startswith("memory history: linear leak")
        # The service itself read that history when the alert came, before it planned, and said so.
        seen = [
            record.get("pattern")
            for record in stack.service_records()
            if str(record.get("message", "")).startswith(f"memory history of {namespace}/{deployment_name} ")
        ]
        assert seen and seen[0] == analyses.Pattern.LINEAR_LEAK.value, seen

        # The fix ships: a rollout of a version without the leak replaces the pods.
        body: Any = {"spec": {"template": {"metadata": {"annotations": {GROWTH: None}}}}}
        await client.AppsV1Api(kube_api).patch_namespaced_deployment(
            deployment_name, namespace, body, **incidents.MERGE_PATCH
        )
        await _resolves_with_a_notice(
            stack, alertname="PodMemoryTrendingToOOM", namespace=namespace, pod=name
        )

    deployment = await read_deployment(kube_api, namespace, deployment_name)
    assert deployment["spec"]["replicas"] == 2
    _assert_one_mitigation(stack, deployment, settings.Action.SCALE_OUT)
