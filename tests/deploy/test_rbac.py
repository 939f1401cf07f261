"""The service runs with exactly the chart's RBAC, as the chart's ServiceAccount, against the real API server; every
rule the chart grants is needed.

Aspects covered:
* the chart installed with helm (in-place resize on, so every optional rule is rendered); the pipeline
  (`responder.engine.processing.Processor`, fed the way the webhook feeds it: normalize → route → work item)
  authenticates with a token of the chart's ServiceAccount from the TokenRequest API;
* one scenario per kind of incident the playbooks answer, each in a fresh namespace, each carried to
  completion with exactly the chart's RBAC and without a single refused request: a raise of a Deployment's,
  a StatefulSet's and a DaemonSet's (with a fast and with a slow rollout) memory limit (written with its
  ledger entry, verified, announced as an Event), the eviction of a Job's pod (ledger entry on the Job), a scale-out that raises an HPA's floor, a
  raise left alone because a VerticalPodAutoscaler manages the workload, an in-place resize of a running
  pod, a repeated alert whose pod is gone (found by the ledger), and `oom-responder doctor` giving a verdict
  on every permission in a cluster without the built-in system:basic-user binding (which grants
  SelfSubjectAccessReviews to every identity; the chart's own rule keeps `doctor` working without it);
* `NEEDS`, the table of every rule (role, API group, resource, verb) → the scenario that needs it and what
  that scenario still achieves without it; each rule taken away in turn from the live Role/ClusterRole makes
  its scenario fall short exactly that way, with a 403 reported;
* the table names every rule the chart renders (cluster or namespaced scope, every optional rule on) and
  nothing else, so a rule added without a scenario fails;
* `doctor`, run as the chart's ServiceAccount, finds every permission allowed (including the state ConfigMap's
  get/update, granted by name only).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import io
import json
import secrets
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException

from responder import metrics as metrics_mod
from responder.commands import doctoring
from responder.engine import processing
from responder.kube import client, errors, permissions
from responder.kube import events as kube_events
from responder.kube import state as state_mod
from responder.logic import normalizing, routing
from responder.models import alerts, decisions, follow_ups, ledgers, notices, settings, targets, work
from tests.deploy import test_install, tooling
from tests.kubeplane import incidents
from tests.kubeplane import plane as plane_mod

integration = pytest.mark.integration

# The chart's own config, plus what these tests need: playbooks chosen by a `scenario` label on the alert, and
# guardrails that let one module make dozens of writes on dozens of workloads within minutes (the production
# defaults of the budget and the blast-radius breaker would rightly stop that).
VALUES: dict[str, Any] = {
    "rbac": {"podResize": True},
    "config": {
        "mode": "enforce",
        "guardrails": {"budget": {"mutations": 1000}, "blast_radius": {"max_workloads": 1000}},
        "verification": {"poll_seconds": 0.2},
        # One verdict, two minutes after the mitigation (the follow-up scenario moves its clock there).
        "follow_up": {"horizons_seconds": [120]},
        "playbooks": [
            {"name": "oom-evict", "alerts": ["oom_killed"], "matchers": ['scenario="evict"'],
             "actions": ["evict_pod"]},
            {"name": "oom-scale-out", "alerts": ["oom_killed"], "matchers": ['scenario="scale-out"'],
             "actions": ["scale_out"]},
            {"name": "oom-resize", "alerts": ["oom_killed"], "matchers": ['scenario="resize"'],
             "actions": [{"raise_memory": {"resize_in_place": True}}]},
            {"name": "oom-follow-up", "alerts": ["oom_killed"], "matchers": ['scenario="follow-up"'],
             "actions": ["raise_memory", {"scheduled_restart": {"interval_seconds": 60, "max_count": 1}}]},
            {"name": "oom-raise-memory", "alerts": ["oom_killed"], "actions": ["raise_memory"]},
        ],
    },
}  # fmt: skip

VPA_CRD = "verticalpodautoscalers.autoscaling.k8s.io"

# A stand-in for the VerticalPodAutoscaler CRD: the shape the responder reads, nothing validated.
# autoscaling.k8s.io is a protected group: a CRD in it must say whether the API was approved.
_VPA_CRD_BODY = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {
        "name": VPA_CRD,
        "annotations": {"api-approved.kubernetes.io": "unapproved, a test stand-in"},
    },
    "spec": {
        "group": "autoscaling.k8s.io",
        "scope": "Namespaced",
        "names": {
            "plural": "verticalpodautoscalers",
            "singular": "verticalpodautoscaler",
            "kind": "VerticalPodAutoscaler",
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


# ---- the table -------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, order=True)
class Rule:
    """One verb on one resource, as the chart grants it."""

    role: str
    """"workloads" (the ClusterRole, or a Role per namespace), "state" (the state ConfigMap's Role),
    "follow-ups" (the follow-up Leases' Role) or "access-review" (the ClusterRole for `doctor`)."""
    group: str
    resource: str
    """With its subresource: "pods/eviction"."""
    verb: str

    def __str__(self) -> str:
        return f"{self.role}:{self.verb}:{self.group or 'core'}/{self.resource}"


@dataclasses.dataclass(frozen=True)
class Need:
    scenario: str
    keeps: frozenset[str] = frozenset()
    """What the scenario still achieves without the rule (always less than with it)."""


def _need(scenario: str, *keeps: str) -> Need:
    return Need(scenario, frozenset(keeps))


NEEDS: dict[Rule, Need] = {
    # The alerted pod, and the admission pre-check of a raise: a server-side dry-run create of the new pod.
    Rule("workloads", "", "pods", "get"): _need("raise-deployment"),
    Rule("workloads", "", "pods", "create"): _need("raise-deployment"),
    Rule("workloads", "", "pods/eviction", "create"): _need("evict-job-pod"),
    # capture_diagnostics: the OOM-killed container's previous log (runbook Step 4).
    Rule("workloads", "", "pods/log", "get"): _need("previous-log"),
    Rule("workloads", "", "pods/resize", "patch"): _need("resize-in-place", "raised"),
    # A DaemonSet's (or StatefulSet's) rollout being followed: its FailedCreate Events; without them it cannot
    # be. (A Deployment's rollout needs none: its controller reports FailedCreate in a condition.)
    Rule("workloads", "", "events", "list"): _need("raise-slow-rollout", "raised", "announced"),
    Rule("workloads", "apps", "deployments", "get"): _need("raise-deployment"),
    Rule("workloads", "apps", "deployments", "patch"): _need("raise-deployment"),
    Rule("workloads", "apps", "statefulsets", "get"): _need("raise-statefulset"),
    Rule("workloads", "apps", "statefulsets", "patch"): _need("raise-statefulset"),
    Rule("workloads", "apps", "daemonsets", "get"): _need("raise-daemonset"),
    Rule("workloads", "apps", "daemonsets", "patch"): _need("raise-daemonset"),
    # A gone pod's workload is found by the ledgers of every templated workload of its namespace, when its
    # name does not lead to it (a long name, which the pod's generated name truncates).
    Rule("workloads", "apps", "deployments", "list"): _need("gone-pod-ledger"),
    Rule("workloads", "apps", "statefulsets", "list"): _need("gone-pod-ledger"),
    Rule("workloads", "apps", "daemonsets", "list"): _need("gone-pod-ledger"),
    Rule("workloads", "apps", "replicasets", "get"): _need("raise-deployment"),
    Rule("workloads", "batch", "jobs", "get"): _need("evict-job-pod"),
    # The eviction is done first (a PDB may refuse it); the ledger entry then cannot be written.
    Rule("workloads", "batch", "jobs", "patch"): _need("evict-job-pod", "evicted"),
    Rule("workloads", "autoscaling", "horizontalpodautoscalers", "list"): _need("scale-out-hpa"),
    # The ledger entry claims the action before the HPA is patched; it is then marked failed.
    Rule("workloads", "autoscaling", "horizontalpodautoscalers", "patch"): _need("scale-out-hpa", "recorded"),
    # Without it the responder cannot see the VPA and raises the limit the VPA manages.
    Rule("workloads", "autoscaling.k8s.io", "verticalpodautoscalers", "list"): _need("raise-vpa"),
    Rule("workloads", "events.k8s.io", "events", "create"): _need("raise-deployment", "raised", "verified"),
    Rule("state", "", "configmaps", "get"): _need("raise-deployment"),
    Rule("state", "", "configmaps", "create"): _need("raise-deployment"),
    Rule("state", "", "configmaps", "update"): _need("raise-deployment"),
    # The follow-ups (verdicts, restart schedules): Leases created and advanced by compare-and-swap, found
    # and read by LIST (without it nothing that was recorded ever happens), marked once when unreadable; a
    # verdict judges the workload's pods (without them it is "unknown").
    Rule("follow-ups", "coordination.k8s.io", "leases", "create"): _need("follow-up", "reported"),
    Rule("follow-ups", "coordination.k8s.io", "leases", "list"): _need("follow-up", "recorded"),
    Rule("follow-ups", "coordination.k8s.io", "leases", "update"): _need("follow-up", "recorded", "reported"),
    Rule("follow-ups", "coordination.k8s.io", "leases", "patch"): _need(
        "follow-up", "recorded", "restarted", "judged", "ended"
    ),
    Rule("workloads", "", "pods", "list"): _need("follow-up", "recorded", "restarted", "reported", "ended"),
    Rule("access-review", "authorization.k8s.io", "selfsubjectaccessreviews", "create"): _need("doctor"),
}


# ---- the installed chart ---------------------------------------------------------------------------------


class Installed:
    """The chart installed once for the module, and a kubeconfig for its ServiceAccount."""

    def __init__(self, plane: plane_mod.KubePlane, namespace: str, release: str, kubeconfig: Path) -> None:
        self.plane = plane
        self.namespace = namespace
        self.release = release
        self.kubeconfig = kubeconfig
        self.name = f"{release}-oom-responder"

    def config(self) -> settings.Settings:
        """The config file the chart rendered, pointed at the ServiceAccount's kubeconfig."""
        configmap = json.loads(
            self.plane.kubectl("-n", self.namespace, "get", "configmap", self.name, "-o", "json").stdout
        )
        raw = yaml.safe_load(configmap["data"]["config.yaml"])
        raw.setdefault("kubernetes", {})["kubeconfig"] = str(self.kubeconfig)
        return settings.Settings.model_validate(raw)

    def role(self, rule: Rule) -> tuple[str, str, list[str]]:
        """(kind, name, namespace arguments) of the live object granting the rule."""
        if rule.role == "state":
            return "role", f"{self.name}-state", ["-n", self.namespace]
        if rule.role == "access-review":
            return "clusterrole", f"{self.name}-access-review", []
        if rule.role == "follow-ups":
            return "role", f"{self.name}-follow-ups", ["-n", self.namespace]
        return "clusterrole", self.name, []


def _token_kubeconfig(plane: plane_mod.KubePlane, namespace: str, account: str) -> Path:
    """A kubeconfig holding a TokenRequest token of the ServiceAccount, as a projected token in a pod."""
    request = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": 3600},
    }
    answer = plane.kubectl(
        "create", "--raw", f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token", "-f", "-",
        input_text=json.dumps(request),
    )  # fmt: skip
    token = json.loads(answer.stdout)["status"]["token"]
    return plane_mod.write_kubeconfig(
        plane.workdir / f"{namespace}-{account}.kubeconfig",
        server=plane.server,
        ca_path=plane.ca_path,
        user=f"system:serviceaccount:{namespace}:{account}",
        token=token,
        namespace=namespace,
    )


@pytest.fixture(scope="module")
def vpa_crd(kube_plane: plane_mod.KubePlane) -> Iterator[None]:
    """The VPA stand-in CRD for the module (raise_memory's check_vpa then really lists VPAs)."""
    kube_plane.kubectl("apply", "-f", "-", input_text=json.dumps(_VPA_CRD_BODY))
    kube_plane.kubectl("wait", "--for=condition=Established", f"crd/{VPA_CRD}")
    try:
        yield
    finally:
        kube_plane.kubectl("delete", "crd", VPA_CRD, "--wait=true", check=False)


@pytest.fixture(scope="module")
def installed(
    kube_plane: plane_mod.KubePlane, helm: Path, tmp_path_factory: pytest.TempPathFactory, vpa_crd: None
) -> Iterator[Installed]:
    namespace = f"oom-responder-{secrets.token_hex(3)}"
    kube_plane.create_namespace(namespace)
    runner = test_install.Helm(helm, kube_plane, tmp_path_factory.mktemp("helm"))
    release = f"r{secrets.token_hex(3)}"
    try:
        kube_plane.kubectl(
            "-n", namespace, "create", "secret", "generic", "oom-responder-webhook", "--from-literal=token=t"
        )
        # wait=False: the pods are kwok's; the service under test runs in this process with the pods' identity.
        result = runner.install(release, namespace, VALUES, wait=False)
        assert result.returncode == 0, result.stderr
        account = f"{release}-oom-responder"
        yield Installed(kube_plane, namespace, release, _token_kubeconfig(kube_plane, namespace, account))
    finally:
        runner.uninstall_all()
        kube_plane.delete_namespace(namespace)


# ---- running the pipeline --------------------------------------------------------------------------------


class Collected:
    """The notifier: keeps every notice (Slack is not part of this test)."""

    def __init__(self) -> None:
        self.notices: list[notices.Notice] = []

    def notify(self, notice: notices.Notice) -> None:
        self.notices.append(notice)


def _payload(namespace: str, pod: str, **labels: str) -> dict[str, Any]:
    starts = datetime.datetime.now(datetime.UTC).isoformat()
    labels = {
        "alertname": "OOMKilled",
        "namespace": namespace,
        "pod": pod,
        "container": "app",
        "severity": "critical",
        **labels,
    }
    return {
        "version": "4", "groupKey": "{}:{alertname=\"OOMKilled\"}", "status": "firing", "receiver": "oom-responder",
        "groupLabels": {"alertname": "OOMKilled"}, "commonLabels": labels, "externalURL": "http://alertmanager",
        "alerts": [{"status": "firing", "labels": labels, "annotations": {}, "startsAt": starts,
                    "fingerprint": secrets.token_hex(8)}],
    }  # fmt: skip


def _events_of(config: settings.Settings, payload: dict[str, Any]) -> list[alerts.AlertEvent]:
    parsed = alerts.WebhookPayload.model_validate(payload)
    found = []
    for alert in parsed.alerts:
        event = normalizing.normalize(alert, payload=parsed, settings=config)
        assert event is not None
        found.append(event)
    return found


@dataclasses.dataclass(frozen=True)
class Observed:
    achieved: frozenset[str]
    forbidden: float
    """Requests the API server refused with 403."""


async def _respond(
    config: settings.Settings, payload: dict[str, Any]
) -> tuple[metrics_mod.Metrics, Collected]:
    """What one replica does with one webhook payload, up to the end of the rollout verification."""
    metrics = metrics_mod.Metrics()
    collected = Collected()
    kube = await client.Kube.connect(settings=config.kubernetes, metrics=metrics)
    own = state_mod.own_namespace(config)
    processor = processing.Processor(
        settings=config,
        metrics=metrics,
        kube=kube,
        notifiers=collected,
        state_store=state_mod.StateStore(
            kube, namespace=state_mod.state_namespace(config, own_namespace=own), settings=config
        ),
        own_namespace=own,
    )
    try:
        for event in _events_of(config, payload):
            item = work.WorkItem(
                event=event,
                playbook=routing.route(event, config.playbooks),
                received_at=datetime.datetime.now(datetime.UTC),
                queue_key=routing.queue_key(event, settings=config.alerts),
            )
            await processor.handle(item)
        await processor.wait_verifications()
    finally:
        await processor.close(5)
        await kube.close()
    return metrics, collected


def _forbidden(metrics: metrics_mod.Metrics) -> float:
    return sum(
        sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == "oom_responder_kube_requests_total" and sample.labels.get("code") == "403"
    )


# ---- what a scenario achieved, read back from the cluster ------------------------------------------------


@dataclasses.dataclass
class Context:
    installed: Installed
    api: Any
    namespace: str


def _annotations_ledger(obj: dict[str, Any]) -> list[ledgers.LedgerEntry]:
    return ledgers.load((obj["metadata"].get("annotations") or {}).get(ledgers.ANNOTATION))


async def _read(ctx: Context, kind: str, name: str) -> dict[str, Any]:
    apps = k8s.AppsV1Api(ctx.api)
    readers: dict[str, Callable[[str, str], Awaitable[Any]]] = {
        "Deployment": apps.read_namespaced_deployment,
        "StatefulSet": apps.read_namespaced_stateful_set,
        "DaemonSet": apps.read_namespaced_daemon_set,
        "Job": k8s.BatchV1Api(ctx.api).read_namespaced_job,
        "HorizontalPodAutoscaler": k8s.AutoscalingV2Api(ctx.api).read_namespaced_horizontal_pod_autoscaler,
    }
    return incidents.to_dict(ctx.api, await readers[kind](name, ctx.namespace))


def _template_limit(workload: dict[str, Any]) -> str:
    limit: str = workload["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]
    return limit


def _announced(ctx: Context, kind: str, name: str, action: settings.Action) -> bool:
    """An Event of the responder on the workload that reports the action as done."""
    items = json.loads(
        ctx.installed.plane.kubectl("-n", ctx.namespace, "get", "events.events.k8s.io", "-o", "json").stdout
    )["items"]
    return any(
        e.get("reportingController") == kube_events.REPORTING_CONTROLLER
        and e["regarding"].get("kind") == kind
        and e["regarding"].get("name") == name
        and e.get("action") == action.value
        and e.get("reason") == decisions.Outcome.DONE.value
        for e in items
    )


def _verified(collected: Collected) -> bool:
    return any(
        n.kind is notices.NoticeKind.VERIFICATION and n.outcome is decisions.Outcome.DONE
        for n in collected.notices
    )


async def _oom_killed_pod(ctx: Context, selector: str, count: int = 1) -> dict[str, Any]:
    pods = await incidents.wait_for_running_pods(ctx.api, ctx.namespace, selector=selector, count=count)
    return await incidents.mark_oom_killed(ctx.api, pods[0])


async def _raise(ctx: Context, kind: str, name: str, pod: dict[str, Any]) -> Observed:
    """raise_memory (the chart's default OOMKilled playbook) on the pod's workload: raised, verified, announced."""
    metrics, collected = await _respond(
        ctx.installed.config(), _payload(ctx.namespace, pod["metadata"]["name"])
    )
    workload = await _read(ctx, kind, name)
    achieved = set()
    if _template_limit(workload) == "228Mi" and [e.action for e in _annotations_ledger(workload)] == [
        settings.Action.RAISE_MEMORY
    ]:
        achieved.add("raised")
    if _verified(collected):
        achieved.add("verified")
    if _announced(ctx, kind, name, settings.Action.RAISE_MEMORY):
        achieved.add("announced")
    return Observed(frozenset(achieved), _forbidden(metrics))


async def _stage_previous_log(ctx: Context) -> dict[str, Any]:
    await incidents.create_deployment(ctx.api, ctx.namespace, "logs", replicas=1)
    return await _oom_killed_pod(ctx, "app=logs")


async def _act_previous_log(ctx: Context, pod: dict[str, Any]) -> Observed:
    """capture_diagnostics asks for the OOM-killed container's previous log. This plane's fake nodes serve no
    kubelet endpoint (tests/integration/diagnostics starts one that does), so the API server cannot deliver
    it; what the rule decides is whether the request is authorized and reaches the node at all."""
    config = ctx.installed.config().model_copy(
        update={
            "playbooks": [
                settings.Playbook.model_validate(
                    {"name": "logs", "alerts": ["oom_killed"], "actions": ["capture_diagnostics"]}
                )
            ]
        }
    )
    metrics, collected = await _respond(config, _payload(ctx.namespace, pod["metadata"]["name"]))
    details = [n.detail for n in collected.notices if n.action is settings.Action.CAPTURE_DIAGNOSTICS]
    asked = any(
        "previous log of app:" in detail and "reading logs is not allowed" not in detail for detail in details
    )
    return Observed(frozenset({"asked"} if asked else set()), _forbidden(metrics))


# ---- the scenarios ---------------------------------------------------------------------------------------
# Each stages its incident with admin rights (`stage`), then answers it as the chart's ServiceAccount (`act`).


Staged = Any


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    achieves: frozenset[str]
    """What it achieves with the chart's full RBAC."""
    stage: Callable[[Context], Awaitable[Staged]]
    act: Callable[[Context, Staged], Awaitable[Observed]]
    undo: Callable[[Context, Staged], None] = lambda ctx, staged: None
    """Undoes what `stage` changed outside the test's namespace."""


async def _stage_deployment(ctx: Context) -> dict[str, Any]:
    await incidents.create_deployment(ctx.api, ctx.namespace, "cart", replicas=1)
    return await _oom_killed_pod(ctx, "app=cart")


async def _act_deployment(ctx: Context, pod: dict[str, Any]) -> Observed:
    return await _raise(ctx, "Deployment", "cart", pod)


async def _stage_slow_rollout(ctx: Context) -> dict[str, Any]:
    """A DaemonSet whose new pods count as available only after a few seconds, as real rollouts take: the
    verification looks for FailedCreate Events at least once before the rollout completes."""
    await incidents.create_daemonset(ctx.api, ctx.namespace, "agent")
    patch: Any = {"spec": {"minReadySeconds": 3}}
    await k8s.AppsV1Api(ctx.api).patch_namespaced_daemon_set(
        "agent", ctx.namespace, patch, **incidents.MERGE_PATCH
    )
    nodes = len(ctx.installed.plane.node_names)
    return await _oom_killed_pod(ctx, "app=agent", count=nodes)


async def _stage_statefulset(ctx: Context) -> dict[str, Any]:
    await incidents.create_statefulset(ctx.api, ctx.namespace, "db", replicas=1)
    return await _oom_killed_pod(ctx, "app=db")


async def _act_statefulset(ctx: Context, pod: dict[str, Any]) -> Observed:
    return await _raise(ctx, "StatefulSet", "db", pod)


async def _stage_daemonset(ctx: Context) -> dict[str, Any]:
    await incidents.create_daemonset(ctx.api, ctx.namespace, "agent")
    nodes = len(ctx.installed.plane.node_names)
    return await _oom_killed_pod(ctx, "app=agent", count=nodes)


async def _act_daemonset(ctx: Context, pod: dict[str, Any]) -> Observed:
    return await _raise(ctx, "DaemonSet", "agent", pod)


async def _stage_job(ctx: Context) -> dict[str, Any]:
    body: Any = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "report"},
        "spec": {
            "backoffLimit": 6,
            "template": {
                "metadata": {"labels": {"app": "report"}},
                "spec": {
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 0,
                    "containers": [incidents.container()],
                },
            },
        },
    }
    await k8s.BatchV1Api(ctx.api).create_namespaced_job(ctx.namespace, body)
    core = k8s.CoreV1Api(ctx.api)

    # The fake nodes finish a Job's pod as soon as it runs, and a finished container may not run again: the
    # kill is reported the way a kubelet reports a container of a `restartPolicy: Never` pod killed for memory.
    async def finished() -> Any:
        pods = (await core.list_namespaced_pod(ctx.namespace, label_selector="app=report")).items
        return next((p for p in pods if p.status.phase in ("Succeeded", "Failed")), None)

    name = (await incidents.wait_for(finished, what="the Job's pod to finish")).metadata.name
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for _ in range(10):
        pod = incidents.to_dict(ctx.api, await core.read_namespaced_pod_status(name, ctx.namespace))
        terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
        terminated.update(reason="OOMKilled", exitCode=137, finishedAt=now)
        edited: Any = pod
        try:
            replaced = await core.replace_namespaced_pod_status(name, ctx.namespace, edited)
        except ApiException as e:
            if e.status != 409:
                raise
            continue
        return incidents.to_dict(ctx.api, replaced)
    raise AssertionError(f"the status of pod {name} kept changing")


async def _act_job(ctx: Context, pod: dict[str, Any]) -> Observed:
    """evict_pod on a Job's pod: evicted, recorded in the Job's ledger, announced."""
    name = pod["metadata"]["name"]
    metrics, _ = await _respond(ctx.installed.config(), _payload(ctx.namespace, name, scenario="evict"))
    achieved = set()
    try:
        live = await k8s.CoreV1Api(ctx.api).read_namespaced_pod(name, ctx.namespace)
        if live.metadata.deletion_timestamp is not None:
            achieved.add("evicted")
    except ApiException as e:
        if e.status != 404:
            raise
        achieved.add("evicted")
    job = await _read(ctx, "Job", "report")
    if [e.action for e in _annotations_ledger(job)] == [settings.Action.EVICT_POD]:
        achieved.add("recorded")
    if _announced(ctx, "Job", "report", settings.Action.EVICT_POD):
        achieved.add("announced")
    return Observed(frozenset(achieved), _forbidden(metrics))


async def _stage_hpa(ctx: Context) -> dict[str, Any]:
    deployment = await incidents.create_deployment(ctx.api, ctx.namespace, "web", replicas=1)
    await incidents.create_hpa(ctx.api, ctx.namespace, deployment, min_replicas=1, max_replicas=5)
    return await _oom_killed_pod(ctx, "app=web")


async def _act_hpa(ctx: Context, pod: dict[str, Any]) -> Observed:
    """scale_out on a Deployment an HPA scales: the HPA's floor raised, the ledger entry, the Event."""
    payload = _payload(ctx.namespace, pod["metadata"]["name"], scenario="scale-out")
    metrics, _ = await _respond(ctx.installed.config(), payload)
    achieved = set()
    if (await _read(ctx, "HorizontalPodAutoscaler", "web"))["spec"]["minReplicas"] == 2:
        achieved.add("floor-raised")
    if [e.action for e in _annotations_ledger(await _read(ctx, "Deployment", "web"))] == [
        settings.Action.SCALE_OUT
    ]:
        achieved.add("recorded")
    if _announced(ctx, "Deployment", "web", settings.Action.SCALE_OUT):
        achieved.add("announced")
    return Observed(frozenset(achieved), _forbidden(metrics))


async def _stage_vpa(ctx: Context) -> dict[str, Any]:
    await incidents.create_deployment(ctx.api, ctx.namespace, "web", replicas=1)
    body: Any = {
        "apiVersion": "autoscaling.k8s.io/v1",
        "kind": "VerticalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "updatePolicy": {"updateMode": "Auto"},
        },
    }
    await k8s.CustomObjectsApi(ctx.api).create_namespaced_custom_object(
        "autoscaling.k8s.io", "v1", ctx.namespace, "verticalpodautoscalers", body
    )
    return await _oom_killed_pod(ctx, "app=web")


async def _act_vpa(ctx: Context, pod: dict[str, Any]) -> Observed:
    """raise_memory (check_vpa) on a Deployment whose memory a VPA in Auto mode manages: left alone."""
    metrics, collected = await _respond(
        ctx.installed.config(), _payload(ctx.namespace, pod["metadata"]["name"])
    )
    untouched = _template_limit(await _read(ctx, "Deployment", "web")) == "128Mi"
    seen = any(n.reason is decisions.Reason.VPA_MANAGED for n in collected.notices)
    return Observed(frozenset({"left-alone"} if untouched and seen else set()), _forbidden(metrics))


async def _stage_resize(ctx: Context) -> dict[str, Any]:
    await incidents.create_statefulset(ctx.api, ctx.namespace, "db", replicas=1)
    # OnDelete: the template change does not replace the running pod, so only an in-place resize reaches it.
    patch: Any = {"spec": {"updateStrategy": {"type": "OnDelete", "rollingUpdate": None}}}
    await k8s.AppsV1Api(ctx.api).patch_namespaced_stateful_set(
        "db", ctx.namespace, patch, **incidents.MERGE_PATCH
    )
    return await _oom_killed_pod(ctx, "app=db")


async def _act_resize(ctx: Context, pod: dict[str, Any]) -> Observed:
    """raise_memory with resize_in_place: the template raised, and the running pod resized."""
    name = pod["metadata"]["name"]
    metrics, _ = await _respond(ctx.installed.config(), _payload(ctx.namespace, name, scenario="resize"))
    achieved = set()
    if _template_limit(await _read(ctx, "StatefulSet", "db")) == "228Mi":
        achieved.add("raised")
    live = incidents.to_dict(ctx.api, await k8s.CoreV1Api(ctx.api).read_namespaced_pod(name, ctx.namespace))
    assert live["metadata"]["uid"] == pod["metadata"]["uid"], "OnDelete keeps the pod"
    if live["spec"]["containers"][0]["resources"]["limits"]["memory"] == "228Mi":
        achieved.add("resized")
    return Observed(frozenset(achieved), _forbidden(metrics))


GONE_POD_OWNER = "checkout-recommendations-personalised-ranking-api"
"""Long enough that its pods' generated names are truncated (to 58 characters before the random suffix), so
the pod's name does not lead to the Deployment and only the namespace's ledgers do."""


async def _stage_gone_pod(ctx: Context) -> dict[str, Any]:
    """A repeat of an alert already answered whose pod the rollout has since replaced: the alert names a pod
    that no longer exists and no workload; the Deployment's ledger records the occurrence."""
    payload = _payload(ctx.namespace, f"{GONE_POD_OWNER}-7d9f8b6c5-"[:58] + "x2x4q")
    [event] = _events_of(ctx.installed.config(), payload)
    entry = ledgers.LedgerEntry.model_validate(
        {
            "action": "raise_memory", "from": "128Mi", "to": "228Mi", "playbook": "oom-raise-memory",
            "occurrence": event.occurrence_id, "by": "another-replica", "container": "app",
            "at": datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=1),
        }
    )  # fmt: skip
    ledger = {ledgers.ANNOTATION: ledgers.dump([entry])}
    await incidents.create_deployment(ctx.api, ctx.namespace, GONE_POD_OWNER, replicas=1, annotations=ledger)
    return payload


async def _act_gone_pod(ctx: Context, payload: dict[str, Any]) -> Observed:
    """The repeat is recognised on the Deployment (from its ledger) as already handled."""
    metrics, collected = await _respond(ctx.installed.config(), payload)
    found = any(
        n.reason is decisions.Reason.ALREADY_HANDLED
        and n.target is not None
        and n.target.name == GONE_POD_OWNER
        for n in collected.notices
    )
    return Observed(frozenset({"found"} if found else set()), _forbidden(metrics))


async def _stage_follow_up(ctx: Context) -> dict[str, Any]:
    await incidents.create_deployment(ctx.api, ctx.namespace, "leaky", replicas=1)
    return await _oom_killed_pod(ctx, "app=leaky")


async def _act_follow_up(ctx: Context, pod: dict[str, Any]) -> Observed:
    """A raise with a restart schedule, followed through on an injected clock: the follow-up recorded, the
    restart made when due, the verdict taken from the pods, the record a tombstone when over; beside it, a record
    edited by hand into something unreadable is reported once."""
    config = ctx.installed.config()
    metrics = metrics_mod.Metrics()
    collected = Collected()
    clock = [datetime.datetime.now(datetime.UTC)]
    kube = await client.Kube.connect(settings=config.kubernetes, metrics=metrics)
    own = state_mod.own_namespace(config)
    processor = processing.Processor(
        settings=config,
        metrics=metrics,
        kube=kube,
        notifiers=collected,
        state_store=state_mod.StateStore(kube, namespace=own, settings=config),
        own_namespace=own,
        clock=lambda: clock[0],
    )
    where = follow_ups.record_name(targets.Target(targets.WorkloadKind.DEPLOYMENT, ctx.namespace, "leaky"))
    broken = f"oom-responder-follow-broken-{secrets.token_hex(3)}"
    achieved = set()
    leases = k8s.CoordinationV1Api(ctx.api)
    try:
        [event] = _events_of(config, _payload(ctx.namespace, pod["metadata"]["name"], scenario="follow-up"))
        item = work.WorkItem(
            event=event,
            playbook=routing.route(event, config.playbooks),
            received_at=clock[0],
            queue_key=routing.queue_key(event, settings=config.alerts),
        )
        await processor.handle(item)
        await processor.wait_verifications()
        if await _lease(leases, own, where) is not None:
            achieved.add("recorded")
        # Other scenarios' follow-ups (their namespaces are being deleted: no Event can be created there) are
        # not this scenario's business: an administrator clears them first.
        selector = ",".join(f"{k}={v}" for k, v in follow_ups.LABELS.items())
        for other in (await leases.list_namespaced_lease(own, label_selector=selector)).items:
            if other.metadata.name != where:
                with contextlib.suppress(ApiException):
                    await leases.delete_namespaced_lease(other.metadata.name, own)
        body: Any = {
            "metadata": {
                "name": broken,
                "labels": dict(follow_ups.LABELS),
                "annotations": {
                    follow_ups.TARGET_ANNOTATION: f"{ctx.namespace}/Deployment/gone",
                    follow_ups.DATA_KEY: '{"version": 1, "edited": "by hand"}',
                },
            },
            "spec": {},
        }
        await leases.create_namespaced_lease(own, body)
        for seconds in (61, 60):  # the restart falls due; then the verdict, and the schedule is over
            clock[0] += datetime.timedelta(seconds=seconds)
            with contextlib.suppress(errors.KubeError):
                await asyncio.gather(*await processor.following.tick())
    finally:
        with contextlib.suppress(ApiException):
            await leases.delete_namespaced_lease(broken, own)
        await processor.close(5)
        await kube.close()
    entries = _annotations_ledger(await _read(ctx, "Deployment", "leaky"))
    if [e.occurrence.rsplit("/", 1)[-1] for e in entries if e.action is settings.Action.ROLLOUT_RESTART] == [
        "restart-1"
    ]:
        achieved.add("restarted")
    if any(e.verdicts == {"2m": "stable"} for e in entries):
        achieved.add("judged")
    if any(n.reason is decisions.Reason.INVALID and broken in n.summary for n in collected.notices):
        achieved.add("reported")
    lease = await _lease(leases, own, where)
    ended = lease is not None and '"ended":"done"' in (
        lease.get("metadata", {}).get("annotations") or {}
    ).get(follow_ups.DATA_KEY, "")
    if "recorded" in achieved and ended:
        achieved.add("ended")
    return Observed(frozenset(achieved), _forbidden(metrics))


async def _lease(leases: Any, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        found = await leases.read_namespaced_lease(name, namespace)
    except ApiException as e:
        if e.status == 404:
            return None
        raise
    result: dict[str, Any] = leases.api_client.sanitize_for_serialization(found)
    return result


BASIC_USER = "system:basic-user"


async def _stage_doctor(ctx: Context) -> dict[str, Any]:
    """A cluster where the built-in system:basic-user binding (SelfSubjectAccessReviews for every
    authenticated identity) was taken away, as some hardened clusters do."""
    plane = ctx.installed.plane
    binding: dict[str, Any] = json.loads(
        plane.kubectl("get", "clusterrolebinding", BASIC_USER, "-o", "json").stdout
    )
    plane.kubectl("replace", "-f", "-", input_text=json.dumps({**_bare(binding), "subjects": []}))
    return binding


def _undo_doctor(ctx: Context, binding: dict[str, Any]) -> None:
    ctx.installed.plane.kubectl("replace", "-f", "-", input_text=json.dumps(_bare(binding)))


async def _act_doctor(ctx: Context, _: dict[str, Any]) -> Observed:
    """`oom-responder doctor` reviews every permission the chart's playbooks need, one verdict each."""
    config = ctx.installed.config()
    out = io.StringIO()
    code = await doctoring.diagnose(config, out=out)
    report = out.getvalue()
    if "cannot ask the API server what is allowed" in report:
        # doctor reports the refused access review (a 403) and exits 1 instead of giving verdicts.
        assert code == 1, report
        return Observed(frozenset(), 1)
    verdicts = [line for line in report.splitlines() if line.split(" ", 1)[0] in ("ok", "MISSING")]
    reviewed = len(verdicts) == len(permissions.needed(config))
    return Observed(frozenset({"reviewed"} if reviewed else set()), 0)


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("raise-deployment", frozenset({"raised", "verified", "announced"}), _stage_deployment,
                 _act_deployment),
        Scenario("raise-slow-rollout", frozenset({"raised", "verified", "announced"}), _stage_slow_rollout,
                 _act_daemonset),
        Scenario("raise-statefulset", frozenset({"raised", "verified", "announced"}), _stage_statefulset,
                 _act_statefulset),
        Scenario("raise-daemonset", frozenset({"raised", "verified", "announced"}), _stage_daemonset,
                 _act_daemonset),
        Scenario("evict-job-pod", frozenset({"evicted", "recorded", "announced"}), _stage_job, _act_job),
        Scenario("scale-out-hpa", frozenset({"floor-raised", "recorded", "announced"}), _stage_hpa, _act_hpa),
        Scenario("raise-vpa", frozenset({"left-alone"}), _stage_vpa, _act_vpa),
        Scenario("resize-in-place", frozenset({"raised", "resized"}), _stage_resize, _act_resize),
        Scenario("gone-pod-ledger", frozenset({"found"}), _stage_gone_pod, _act_gone_pod),
        Scenario("doctor", frozenset({"reviewed"}), _stage_doctor, _act_doctor, _undo_doctor),
        Scenario("follow-up", frozenset({"recorded", "restarted", "judged", "reported", "ended"}),
                 _stage_follow_up, _act_follow_up),
        Scenario("previous-log", frozenset({"asked"}), _stage_previous_log, _act_previous_log),
    )
}  # fmt: skip


# ---- taking a rule away ----------------------------------------------------------------------------------


def _bare(obj: dict[str, Any]) -> dict[str, Any]:
    """The object as it can be replaced: no resourceVersion, uid, managedFields or status."""
    metadata = {
        k: v for k, v in obj["metadata"].items() if k in ("name", "namespace", "labels", "annotations")
    }
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")} | {"metadata": metadata}


def _without(role: dict[str, Any], group: str, resource: str, verb: str) -> dict[str, Any]:
    rules = []
    for rule in role["rules"]:
        if group in rule["apiGroups"] and resource in rule["resources"] and verb in rule["verbs"]:
            others = [r for r in rule["resources"] if r != resource]
            if others:
                rules.append({**rule, "resources": others})
            verbs = [v for v in rule["verbs"] if v != verb]
            if verbs:
                rules.append({**rule, "resources": [resource], "verbs": verbs})
        else:
            rules.append(rule)
    assert rules != role["rules"], f"the chart grants no {verb} on {group}/{resource}"
    return _bare(role) | {"rules": rules}


def _allowed(installed: Installed, rule: Rule, namespace: str) -> bool:
    resource, _, subresource = rule.resource.partition("/")
    args = [
        "auth",
        "can-i",
        rule.verb,
        f"{resource}.{rule.group}" if rule.group else resource,
        "-n",
        namespace,
    ]
    if subresource:
        args += ["--subresource", subresource]
    return (
        installed.plane.kubectl(*args, kubeconfig=installed.kubeconfig, check=False).stdout.strip() == "yes"
    )


async def _run(ctx: Context, scenario: Scenario, *, revoke: Rule | None = None) -> Observed:
    staged = await scenario.stage(ctx)
    plane = ctx.installed.plane
    original: dict[str, Any] | None = None
    kind, name, scope = ctx.installed.role(revoke) if revoke else ("", "", [])
    try:
        if revoke is not None:
            state_name = ctx.installed.config().guardrails.state_name
            if revoke == Rule("state", "", "configmaps", "create"):
                # An earlier test may have created the state object; create is needed by the first replica only.
                plane.kubectl(
                    "-n", ctx.installed.namespace, "delete", "configmap", state_name, "--ignore-not-found"
                )
            if revoke == Rule("state", "", "configmaps", "update"):
                # update is what replaces an existing state object: make sure there is one.
                plane.kubectl("-n", ctx.installed.namespace, "create", "configmap", state_name, check=False)
            original = json.loads(plane.kubectl("get", kind, name, *scope, "-o", "json").stdout)
            without = _without(original, revoke.group, revoke.resource, revoke.verb)
            plane.kubectl("replace", *scope, "-f", "-", input_text=json.dumps(without))
            checked_in = ctx.installed.namespace if revoke.role in ("state", "follow-ups") else ctx.namespace

            async def revoked() -> bool:
                return not _allowed(ctx.installed, revoke, checked_in)

            await incidents.wait_for(revoked, what=f"{revoke} to be revoked")
        return await scenario.act(ctx, staged)
    finally:
        if original is not None:
            plane.kubectl("replace", *scope, "-f", "-", input_text=json.dumps(_bare(original)))
        scenario.undo(ctx, staged)


# ---- the tests -------------------------------------------------------------------------------------------


def _rendered_rules(helm: Path, values_dir: Path, rbac: dict[str, Any]) -> set[Rule]:
    """Every (role, group, resource, verb) the chart renders with these rbac values (all optional rules on)."""
    values = {
        "rbac": {"podResize": True, "verticalPodAutoscalers": True, "selfSubjectAccessReviews": True, **rbac}
    }
    found: set[Rule] = set()
    for document in tooling.render_documents(helm, values=values, values_dir=values_dir):
        if document["kind"] not in ("Role", "ClusterRole"):
            continue
        name = document["metadata"]["name"]
        role = "workloads"
        if name.endswith("-state"):
            role = "state"
        elif name.endswith("-follow-ups"):
            role = "follow-ups"
        elif name.endswith("-access-review"):
            role = "access-review"
        for rule in document["rules"]:
            found.update(
                Rule(role, group, resource, verb)
                for group in rule["apiGroups"]
                for resource in rule["resources"]
                for verb in rule["verbs"]
            )
    return found


def test_the_table_names_every_rule_the_chart_renders_and_a_scenario_for_each(
    helm: Path, tmp_path: Path
) -> None:
    rendered = _rendered_rules(helm, tmp_path, {"scope": "cluster"})
    namespaced = _rendered_rules(helm, tmp_path, {"scope": "namespaced", "namespaces": ["shop"]})

    assert namespaced == rendered, "a Role per namespace grants what the ClusterRole grants"
    assert sorted(map(str, rendered - NEEDS.keys())) == [], "rules without a scenario showing they are needed"
    assert sorted(map(str, NEEDS.keys() - rendered)) == [], "rules in the table the chart does not grant"
    for rule, need in NEEDS.items():
        assert need.keeps < SCENARIOS[need.scenario].achieves, (
            f"{rule}: keeps less than the scenario achieves"
        )
    assert {need.scenario for need in NEEDS.values()} == SCENARIOS.keys(), "every scenario is needed"


@integration
@pytest.mark.parametrize("scenario", list(SCENARIOS), ids=str)
async def test_each_scenario_succeeds_with_exactly_the_chart_rbac(
    installed: Installed, kube_api: Any, namespace: str, scenario: str
) -> None:
    observed = await _run(Context(installed, kube_api, namespace), SCENARIOS[scenario])

    assert observed == Observed(SCENARIOS[scenario].achieves, 0)


@integration
async def test_doctor_finds_every_permission_the_chart_grants_allowed(installed: Installed) -> None:
    out = io.StringIO()

    code = await doctoring.diagnose(installed.config(), out=out)

    missing = [line for line in out.getvalue().splitlines() if line.startswith("MISSING")]
    assert (code, missing) == (0, [])


@integration
@pytest.mark.parametrize("rule", sorted(NEEDS), ids=str)
async def test_each_rule_is_needed_by_its_scenario(
    installed: Installed, kube_api: Any, namespace: str, rule: Rule
) -> None:
    need = NEEDS[rule]

    observed = await _run(Context(installed, kube_api, namespace), SCENARIOS[need.scenario], revoke=rule)

    assert observed.achieved == need.keeps
    assert observed.forbidden >= 1, f"no request was refused without {rule}"
