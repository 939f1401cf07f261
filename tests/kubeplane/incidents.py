"""Staging memory incidents on the test control plane (test support; no assertions here).

Async helpers on a ``kubernetes_asyncio`` ApiClient: create workloads with memory limits, wait for
their pods to run (kwok makes them Running), mark a container OOMKilled exactly the way a kubelet
reports it, and create the objects that guard a workload (HPA, PDB, LimitRange, ResourceQuota).

Bodies are sent as plain dicts (typed ``Any``: the generated client serializes dicts as they
are, though its stubs only declare models). Objects are returned as plain dicts in the API's own
camelCase JSON, so a test can compare them with what the responder sent, without model classes.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import Mapping, Sequence
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

__all__ = [
    "DEFAULT_IMAGE",
    "MERGE_PATCH",
    "complete_resize",
    "container",
    "create_daemonset",
    "create_deployment",
    "create_hpa",
    "create_limit_range",
    "create_pdb",
    "create_resource_quota",
    "create_statefulset",
    "evict",
    "mark_oom_killed",
    "mark_resize_pending",
    "mark_restarted",
    "to_dict",
    "wait_for",
    "wait_for_running_pods",
]

Obj = dict[str, Any]

#: Keyword arguments that make a ``patch_*`` call send a JSON merge patch (RFC 7386), which is
#: what ``kubectl patch --type=merge`` and oom-responder send. Typed ``Any`` on purpose: the
#: generated client accepts ``_content_type`` but its stubs do not declare it.
MERGE_PATCH: dict[str, Any] = {"_content_type": "application/merge-patch+json"}

#: Never pulled: kwok fakes the kubelet, so any name works; ``.invalid`` makes that obvious.
DEFAULT_IMAGE = "registry.invalid/app:1"


def to_dict(api: client.ApiClient, obj: Any) -> Obj:
    """A generated model (or dict) as the API's camelCase JSON dict."""
    result = api.sanitize_for_serialization(obj)
    assert isinstance(result, dict)
    return result


def container(
    name: str = "app",
    *,
    memory_limit: str | None = "128Mi",
    memory_request: str | None = "64Mi",
    cpu_request: str | None = "10m",
    image: str = DEFAULT_IMAGE,
) -> Obj:
    """A container spec with the given memory limit/request (None leaves one out)."""
    limits: Obj = {}
    requests: Obj = {}
    if memory_limit is not None:
        limits["memory"] = memory_limit
    if memory_request is not None:
        requests["memory"] = memory_request
    if cpu_request is not None:
        requests["cpu"] = cpu_request
    resources: Obj = {}
    if limits:
        resources["limits"] = limits
    if requests:
        resources["requests"] = requests
    return {"name": name, "image": image, "resources": resources}


def _pod_template(
    name: str,
    containers: Sequence[Obj],
    labels: Mapping[str, str],
    annotations: Mapping[str, str] | None = None,
) -> Obj:
    metadata: Obj = {"labels": {"app": name, **labels}}
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {
        "metadata": metadata,
        "spec": {
            "containers": list(containers),
            # kwok "kills" containers instantly; a long grace period would only slow rollouts.
            "terminationGracePeriodSeconds": 0,
        },
    }


def _workload(
    kind: str,
    name: str,
    *,
    replicas: int | None,
    containers: Sequence[Obj] | None,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    pod_annotations: Mapping[str, str] | None = None,
) -> Obj:
    spec: Obj = {
        "selector": {"matchLabels": {"app": name}},
        "template": _pod_template(name, containers or [container()], labels, pod_annotations),
    }
    if replicas is not None:
        spec["replicas"] = replicas
    if kind == "StatefulSet":
        spec["serviceName"] = name
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": name, "labels": {"app": name, **labels}, "annotations": dict(annotations)},
        "spec": spec,
    }


async def create_deployment(
    api: client.ApiClient,
    namespace: str,
    name: str,
    *,
    replicas: int = 2,
    containers: Sequence[Obj] | None = None,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    pod_annotations: Mapping[str, str] | None = None,
) -> Obj:
    """Create a Deployment whose pods carry ``app=<name>`` (one 128Mi-limited container by default).

    ``annotations`` go on the Deployment, ``pod_annotations`` on its pod template.
    """
    body: Any = _workload(
        "Deployment",
        name,
        replicas=replicas,
        containers=containers,
        labels=labels or {},
        annotations=annotations or {},
        pod_annotations=pod_annotations,
    )
    created = await client.AppsV1Api(api).create_namespaced_deployment(namespace, body)
    return to_dict(api, created)


async def create_statefulset(
    api: client.ApiClient,
    namespace: str,
    name: str,
    *,
    replicas: int = 2,
    containers: Sequence[Obj] | None = None,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> Obj:
    """Create a StatefulSet (``serviceName`` = name; the Service itself is not needed by kwok)."""
    body: Any = _workload(
        "StatefulSet",
        name,
        replicas=replicas,
        containers=containers,
        labels=labels or {},
        annotations=annotations or {},
    )
    created = await client.AppsV1Api(api).create_namespaced_stateful_set(namespace, body)
    return to_dict(api, created)


async def create_daemonset(
    api: client.ApiClient,
    namespace: str,
    name: str,
    *,
    containers: Sequence[Obj] | None = None,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> Obj:
    """Create a DaemonSet: one pod per fake node."""
    body: Any = _workload(
        "DaemonSet",
        name,
        replicas=None,
        containers=containers,
        labels=labels or {},
        annotations=annotations or {},
    )
    created = await client.AppsV1Api(api).create_namespaced_daemon_set(namespace, body)
    return to_dict(api, created)


async def wait_for(
    probe: Any,
    *,
    timeout_seconds: float = 30,
    interval_seconds: float = 0.2,
    what: str = "condition",
) -> Any:
    """Await ``probe()`` until it returns something truthy; return that or raise TimeoutError.

    Polling (not sleeping for a fixed time) is how the integration tests wait for controllers,
    which act asynchronously by design.
    """
    deadline = time.monotonic() + timeout_seconds
    last: Any = None
    while True:
        last = await probe()
        if last:
            return last
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_seconds}s waiting for {what}; last: {last!r}")
        await asyncio.sleep(interval_seconds)


def _is_running(pod: Obj) -> bool:
    meta, status = pod.get("metadata", {}), pod.get("status", {})
    return status.get("phase") == "Running" and not meta.get("deletionTimestamp")


async def wait_for_running_pods(
    api: client.ApiClient,
    namespace: str,
    *,
    selector: str,
    count: int,
    timeout_seconds: float = 60,
) -> list[Obj]:
    """Wait until exactly ``count`` non-terminating pods match ``selector`` and all are Running."""
    core = client.CoreV1Api(api)

    async def probe() -> list[Obj] | None:
        pods = await core.list_namespaced_pod(namespace, label_selector=selector)
        items = [to_dict(api, p) for p in pods.items]
        live = [p for p in items if not p["metadata"].get("deletionTimestamp")]
        if len(live) == count and all(_is_running(p) for p in live):
            return sorted(live, key=lambda p: p["metadata"]["name"])
        return None

    result: list[Obj] = await wait_for(
        probe, timeout_seconds=timeout_seconds, what=f"{count} Running pods matching {selector!r}"
    )
    return result


def _rfc3339(now: datetime.datetime) -> str:
    return now.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def mark_oom_killed(
    api: client.ApiClient,
    pod: Obj,
    container_name: str | None = None,
    *,
    now: datetime.datetime | None = None,
) -> Obj:
    """Report ``container_name`` (default: the first) as OOMKilled and restarted, as a kubelet does.

    The kubelet writes ``lastState.terminated`` (reason OOMKilled, exit code 137 = 128+SIGKILL),
    bumps ``restartCount`` and shows the restarted container running again. We replace the
    pod's ``status`` subresource with a re-read copy and retry on 409, so concurrent writers
    (kwok, the responder) can't make the mark vanish. kwok's pod-running stage only writes status
    while the pod has no podIP, so it never overwrites the mark afterwards.
    """
    return await mark_restarted(api, pod, container_name, reason="OOMKilled", exit_code=137, now=now)


async def mark_restarted(
    api: client.ApiClient,
    pod: Obj,
    container_name: str | None = None,
    *,
    reason: str = "Error",
    exit_code: int = 1,
    now: datetime.datetime | None = None,
) -> Obj:
    """Report ``container_name`` (default: the first) as terminated for ``reason`` and restarted.

    Like :func:`mark_oom_killed` with another termination: ``lastState.terminated`` carries the reason and
    exit code, ``restartCount`` goes up by one and the container runs again.
    """
    when = _rfc3339(now or datetime.datetime.now(datetime.UTC))

    def edit(current: Obj) -> None:
        statuses: list[Obj] = current.setdefault("status", {}).setdefault("containerStatuses", [])
        target = container_name or current["spec"]["containers"][0]["name"]
        entry = next((s for s in statuses if s.get("name") == target), None)
        if entry is None:
            meta = current["metadata"]
            raise ValueError(f"pod {meta['namespace']}/{meta['name']} has no status for container {target!r}")
        started = (entry.get("state") or {}).get("running", {}).get("startedAt", when)
        entry["lastState"] = {
            "terminated": {
                "reason": reason,
                "exitCode": exit_code,
                "startedAt": started,
                "finishedAt": when,
                "containerID": entry.get("containerID", ""),
            }
        }
        entry["restartCount"] = int(entry.get("restartCount", 0)) + 1
        entry["state"] = {"running": {"startedAt": when}}
        entry["ready"] = True

    return await _replace_pod_status(api, pod, edit)


async def _replace_pod_status(api: client.ApiClient, pod: Obj, edit: Any) -> Obj:
    """Re-read the pod, apply ``edit(pod_dict)`` and replace its status; retry on 409."""
    core = client.CoreV1Api(api)
    namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
    for _ in range(10):
        current = to_dict(api, await core.read_namespaced_pod_status(name, namespace))
        edit(current)
        body: Any = current
        try:
            updated = await core.replace_namespaced_pod_status(name, namespace, body)
        except ApiException as e:
            if e.status == 409:
                continue
            raise
        return to_dict(api, updated)
    raise RuntimeError(f"could not update the status of {namespace}/{name}: kept conflicting")


_RESIZE_CONDITIONS = ("PodResizePending", "PodResizeInProgress")


async def complete_resize(api: client.ApiClient, pod: Obj) -> Obj:
    """Report an in-place resize (``pods/resize``) as done, as a kubelet would once applied.

    kwok has no kubelet to actuate resizes, so the pod's status keeps the old resources until
    this is called: it copies every container's spec resources into ``containerStatuses[]
    .resources``/``allocatedResources``, sets ``observedGeneration`` and clears the resize
    conditions.
    """

    def edit(current: Obj) -> None:
        specs = {c["name"]: c.get("resources") or {} for c in current["spec"]["containers"]}
        status = current.setdefault("status", {})
        for entry in status.get("containerStatuses") or []:
            resources = specs.get(entry["name"], {})
            entry["resources"] = resources
            entry["allocatedResources"] = resources.get("requests") or {}
        status["observedGeneration"] = current["metadata"].get("generation", 1)
        status["conditions"] = [
            c for c in status.get("conditions") or [] if c.get("type") not in _RESIZE_CONDITIONS
        ]

    return await _replace_pod_status(api, pod, edit)


async def mark_resize_pending(
    api: client.ApiClient,
    pod: Obj,
    *,
    reason: str = "Infeasible",
    message: str = "Node didn't have enough capacity",
) -> Obj:
    """Report a resize the kubelet cannot apply: condition PodResizePending (Infeasible/Deferred)."""

    def edit(current: Obj) -> None:
        status = current.setdefault("status", {})
        conditions = [c for c in status.get("conditions") or [] if c.get("type") not in _RESIZE_CONDITIONS]
        conditions.append(
            {
                "type": "PodResizePending",
                "status": "True",
                "reason": reason,
                "message": message,
                "lastTransitionTime": _rfc3339(datetime.datetime.now(datetime.UTC)),
            }
        )
        status["conditions"] = conditions
        status["observedGeneration"] = current["metadata"].get("generation", 1)

    return await _replace_pod_status(api, pod, edit)


async def create_hpa(
    api: client.ApiClient,
    namespace: str,
    target: Obj,
    *,
    min_replicas: int = 1,
    max_replicas: int = 5,
    memory_utilization_percent: int = 80,
    name: str | None = None,
) -> Obj:
    """Create an autoscaling/v2 HPA on ``target`` (a workload dict) scaling on memory utilization."""
    body: Any = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name or target["metadata"]["name"]},
        "spec": {
            "scaleTargetRef": {
                "apiVersion": target.get("apiVersion", "apps/v1"),
                "kind": target.get("kind", "Deployment"),
                "name": target["metadata"]["name"],
            },
            "minReplicas": min_replicas,
            "maxReplicas": max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "memory",
                        "target": {"type": "Utilization", "averageUtilization": memory_utilization_percent},
                    },
                }
            ],
        },
    }
    created = await client.AutoscalingV2Api(api).create_namespaced_horizontal_pod_autoscaler(namespace, body)
    return to_dict(api, created)


async def create_pdb(
    api: client.ApiClient,
    namespace: str,
    name: str,
    *,
    selector: Mapping[str, str],
    min_available: int | str | None = None,
    max_unavailable: int | str | None = None,
) -> Obj:
    """Create a policy/v1 PodDisruptionBudget (give exactly one of min_available/max_unavailable)."""
    spec: Obj = {"selector": {"matchLabels": dict(selector)}}
    if min_available is not None:
        spec["minAvailable"] = min_available
    if max_unavailable is not None:
        spec["maxUnavailable"] = max_unavailable
    body: Any = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name},
        "spec": spec,
    }
    created = await client.PolicyV1Api(api).create_namespaced_pod_disruption_budget(namespace, body)
    return to_dict(api, created)


async def create_limit_range(
    api: client.ApiClient,
    namespace: str,
    name: str = "limits",
    *,
    max_memory: str | None = None,
    default_memory: str | None = None,
    default_request_memory: str | None = None,
) -> Obj:
    """Create a LimitRange for containers (max / default limit / default request of memory)."""
    item: Obj = {"type": "Container"}
    if max_memory is not None:
        item["max"] = {"memory": max_memory}
    if default_memory is not None:
        item["default"] = {"memory": default_memory}
    if default_request_memory is not None:
        item["defaultRequest"] = {"memory": default_request_memory}
    body: Any = {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": {"name": name},
        "spec": {"limits": [item]},
    }
    created = await client.CoreV1Api(api).create_namespaced_limit_range(namespace, body)
    return to_dict(api, created)


async def create_resource_quota(
    api: client.ApiClient,
    namespace: str,
    name: str = "quota",
    *,
    hard: Mapping[str, str],
) -> Obj:
    """Create a ResourceQuota, e.g. ``hard={"limits.memory": "256Mi", "pods": "3"}``."""
    body: Any = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": name},
        "spec": {"hard": dict(hard)},
    }
    core = client.CoreV1Api(api)
    created = await core.create_namespaced_resource_quota(namespace, body)

    # The quota admits nothing until the resourcequota controller has computed status.used;
    # wait for it so a test's next create is judged against the real numbers.
    async def probe() -> Any:
        quota = await core.read_namespaced_resource_quota(name, namespace)
        return quota if quota.status and quota.status.used is not None else None

    await wait_for(probe, timeout_seconds=30, what=f"quota {name} status")
    return to_dict(api, created)


async def evict(api: client.ApiClient, pod: Obj) -> None:
    """Evict a pod through the Eviction subresource (raises ApiException 429 if a PDB blocks it)."""
    namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
    body: Any = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": name, "namespace": namespace},
    }
    await client.CoreV1Api(api).create_namespaced_pod_eviction(name, namespace, body)
