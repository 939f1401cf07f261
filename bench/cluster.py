"""The real control plane for the cluster benchmarks (reaction time, storm), and what they stage on it.

The plane itself is the test suite's (`tests/kubeplane`: etcd, kube-apiserver, controllers, kwok nodes, built by
`scripts/test-assets`); this module starts it, stages OOM-killed Deployments with the test suite's incident
helpers, runs `oom-responder serve` against it, posts webhooks and watches the Deployments so that the moment
the API server accepted a mitigation is seen from outside the service, on the same clock as the send time.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes_asyncio import client as k8s_client
from kubernetes_asyncio import watch as k8s_watch

from bench import common, payloads

LEDGER = "oom-responder.io/ledger"
OWN_NAMESPACE = "oom-responder"


@contextlib.contextmanager
def plane(*, pods: int = 200) -> Iterator[Any]:
    """A started control plane with fake nodes enough for `pods` pods (110 a node, as a kubelet's default
    allows, and one node to spare); raises when its binaries are missing: run scripts/test-assets."""
    from tests.kubeplane import assets  # noqa: PLC0415
    from tests.kubeplane import plane as plane_mod  # noqa: PLC0415

    found = assets.find_assets()
    kube = plane_mod.KubePlane(found, nodes=max(3, -(-pods // 100) + 1))
    kube.start(timeout_seconds=180)
    try:
        yield kube
    finally:
        kube.stop()


async def stage_oom_killed(api: Any, namespace: str, *, count: int, prefix: str) -> list[dict[str, str]]:
    """`count` one-replica Deployments whose pod's container `app` was just OOMKilled; their names."""
    from tests.kubeplane import incidents  # noqa: PLC0415

    gate = asyncio.Semaphore(16)

    async def create(i: int) -> None:
        async with gate:
            await incidents.create_deployment(api, namespace, f"{prefix}-{i:04d}", replicas=1)

    await asyncio.gather(*(create(i) for i in range(count)))
    core = k8s_client.CoreV1Api(api)

    async def running() -> list[dict[str, Any]] | None:
        pods = await core.list_namespaced_pod(namespace)
        items = [incidents.to_dict(api, p) for p in pods.items]
        live = [p for p in items if not p["metadata"].get("deletionTimestamp")]
        ok = [p for p in live if p.get("status", {}).get("phase") == "Running"]
        return ok if len(ok) >= count else None

    pods = await incidents.wait_for(
        running, timeout_seconds=300, interval_seconds=1.0, what=f"{count} pods Running"
    )

    async def mark(pod: dict[str, Any]) -> None:
        async with gate:
            await incidents.mark_oom_killed(api, pod)

    await asyncio.gather(*(mark(p) for p in pods))
    return [
        {"deployment": p["metadata"]["labels"]["app"], "pod": p["metadata"]["name"], "container": "app"}
        for p in sorted(pods, key=lambda p: p["metadata"]["name"])
    ]


def service_config(
    workdir: Path, kube: Any, *, qps: float, burst: int, extra: dict[str, Any] | None = None
) -> Path:
    """Enforce mode against the plane, guardrails wide open (nothing may block the benchmark's mitigations)."""
    overrides: dict[str, Any] = {
        "mode": "enforce",
        "identity": "bench-responder",
        "kubernetes": {
            "kubeconfig": str(kube.kubeconfig),
            "qps": qps,
            "burst": burst,
            "own_namespace": OWN_NAMESPACE,
        },
        "guardrails": {
            "max_memory": "64Gi",
            "budget": {"mutations": 100_000, "window_seconds": 600},
            "blast_radius": {"max_workloads": 100_000, "window_seconds": 300},
            "cap": {"max_actions": 1000, "window_seconds": 3600},
        },
        "queue": {"max_pending": 100_000},
    }
    if extra:
        for key, value in extra.items():
            overrides.setdefault(key, {}).update(value) if isinstance(value, dict) else overrides.__setitem__(
                key, value
            )
    return common.write_config(workdir / "cluster.yaml", overrides)


def oom_alert(
    workload: dict[str, str], namespace: str, *, fingerprint: str, starts_at: str
) -> dict[str, Any]:
    return payloads.alert(
        alertname="OOMKilled",
        namespace=namespace,
        pod=workload["pod"],
        container=workload["container"],
        fingerprint=fingerprint,
        starts_at=starts_at,
    )


def rfc3339(when: datetime.datetime | None = None) -> str:
    when = when or datetime.datetime.now(datetime.UTC)
    return when.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def post(session: aiohttp.ClientSession, url: str, alerts: list[dict[str, Any]]) -> tuple[int, float]:
    """POST one webhook; (status, seconds to the answer)."""
    body = json.dumps(payloads.payload(alerts)).encode()
    t0 = time.perf_counter()
    async with session.post(
        url,
        data=body,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {common.TOKEN}"},
    ) as response:
        await response.read()
        return response.status, time.perf_counter() - t0


def ledger_of(deployment: Any) -> list[dict[str, Any]]:
    annotations = (deployment.get("metadata") or {}).get("annotations") or {}
    try:
        entries = json.loads(annotations.get(LEDGER) or "[]")
    except ValueError:
        return []
    return entries if isinstance(entries, list) else []


class Watcher:
    """Watches Deployments in one namespace; notes when each first shows a ledger entry, on `time.perf_counter`."""

    def __init__(self, api: Any, namespace: str) -> None:
        self.api = api
        self.namespace = namespace
        self.first_entry: dict[str, float] = {}
        self.ledgers: dict[str, list[dict[str, Any]]] = {}
        self.events: dict[str, asyncio.Event] = {}
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    def event_for(self, name: str) -> asyncio.Event:
        return self.events.setdefault(name, asyncio.Event())

    async def _run(self) -> None:
        apps = k8s_client.AppsV1Api(self.api)
        resource_version = None
        while True:
            listed = await apps.list_namespaced_deployment(self.namespace)
            resource_version = listed.metadata.resource_version
            for item in listed.items:
                self._see(self.api.sanitize_for_serialization(item), time.perf_counter())
            self._ready.set()
            w = k8s_watch.Watch()
            try:
                async for event in w.stream(
                    apps.list_namespaced_deployment,
                    self.namespace,
                    resource_version=resource_version,
                    timeout_seconds=600,
                ):
                    now = time.perf_counter()
                    obj = event["raw_object"] if "raw_object" in event else event["object"]
                    if not isinstance(obj, dict):
                        obj = self.api.sanitize_for_serialization(obj)
                    self._see(obj, now)
            except (TimeoutError, aiohttp.ClientError, k8s_client.ApiException):
                await asyncio.sleep(0.2)
            finally:
                w.stop()

    def _see(self, obj: dict[str, Any], now: float) -> None:
        name = (obj.get("metadata") or {}).get("name")
        if not name:
            return
        entries = ledger_of(obj)
        self.ledgers[name] = entries
        if entries and name not in self.first_entry:
            self.first_entry[name] = now
            self.event_for(name).set()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Watcher]:
        self._task = asyncio.create_task(self._run())
        try:
            await asyncio.wait_for(self._ready.wait(), 30)
            yield self
        finally:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def final_ledgers(api: Any, namespace: str) -> dict[str, list[dict[str, Any]]]:
    apps = k8s_client.AppsV1Api(api)
    listed = await apps.list_namespaced_deployment(namespace)
    return {item.metadata.name: ledger_of(api.sanitize_for_serialization(item)) for item in listed.items}


def duplicates(ledgers: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
    """Entries beyond the first per (workload, occurrence, action), and workloads with more than one write."""
    per_occurrence = 0
    workloads_with_more = 0
    for entries in ledgers.values():
        seen: dict[tuple[str, str], int] = {}
        writes = 0
        for e in entries:
            if e.get("result") in (None, "done", "failed", "verified") and e.get("action") not in (
                "capture_diagnostics",
                "escalate",
            ):
                writes += 1
            key = (str(e.get("occurrence")), str(e.get("action")))
            seen[key] = seen.get(key, 0) + 1
        per_occurrence += sum(n - 1 for n in seen.values() if n > 1)
        if writes > 1:
            workloads_with_more += 1
    return {
        "extra_entries_per_occurrence": per_occurrence,
        "workloads_with_more_than_one_write": workloads_with_more,
    }


def kube_requests(port: int) -> dict[str, float]:
    status, body = common.http_get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    if status != 200:
        return {}
    return common.metric_values(body.decode(), "oom_responder_kube_requests_total")


def histogram(port: int, name: str) -> dict[str, float]:
    status, body = common.http_get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    if status != 200:
        return {}
    text = body.decode()
    return {
        **{f"bucket{k}": v for k, v in common.metric_values(text, f"{name}_bucket").items()},
        **{f"count{k}": v for k, v in common.metric_values(text, f"{name}_count").items()},
        **{f"sum{k}": v for k, v in common.metric_values(text, f"{name}_sum").items()},
    }


def queue_depth(port: int) -> float | None:
    status, body = common.http_get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    if status != 200:
        return None
    values = common.metric_values(body.decode(), "oom_responder_queue_depth")
    return sum(values.values()) if values else None
