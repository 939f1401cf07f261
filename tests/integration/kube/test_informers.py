"""Informers against the real kube-apiserver: the watch-fed cache the pipeline reads from.

Aspects covered:

* an informer lists what exists, then follows creations, changes and deletions through one watch, stores
  objects without managedFields and the last-applied annotation, and counts its requests as `list` and
  `watch` of the resource;
* a watch the server ends (its timeoutSeconds) is opened again from the last resourceVersion, not by
  listing again, and nothing that changed in between is missed;
* (410 Gone, which a fresh control plane's watch cache never answers, is covered in
  tests/unit/kube/test_informers.py);
* `wait_for` returns the object once the watch shows the condition (how rollouts are followed);
* namespace scoping: `Informers(namespaces=[...])` holds those namespaces only and never lists cluster-wide,
  which a service account with namespaced RBAC (list/watch in that namespace) can do; an informer its RBAC
  forbids stays unsynced, says why, and reads fall back (`known` False).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from responder import metrics as metrics_mod
from responder.kube import client, informers
from responder.models import settings
from tests.kubeplane import plane as plane_mod

pytestmark = pytest.mark.integration


def _deployment(name: str, **annotations: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", **annotations},
        },
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": "registry.invalid/app:1"}]},
            },
        },
    }


async def _kube(kubeconfig: Path) -> client.Kube:
    return await client.Kube.connect(
        settings=settings.KubernetesSettings(kubeconfig=str(kubeconfig)), metrics=metrics_mod.Metrics()
    )


def _count(kube: client.Kube, verb: str, resource: str) -> float:
    return sum(
        sample.value
        for family in kube.metrics.registry.collect()
        for sample in family.samples
        if sample.name == "oom_responder_kube_requests_total"
        and (sample.labels["verb"], sample.labels["resource"]) == (verb, resource)
    )


async def _until(condition: Callable[[], bool], *, deadline_seconds: float = 30) -> None:
    """Poll until `condition()` holds (a bound, not a measurement); fail after the deadline."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_seconds
    while not condition():
        if loop.time() > end:
            pytest.fail(f"gave up after {deadline_seconds}s")
        await asyncio.sleep(0.05)


async def test_lists_then_follows_changes_through_the_watch(
    kube_plane: plane_mod.KubePlane, namespace: str
) -> None:
    kube = await _kube(kube_plane.kubeconfig)
    base = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    informer = informers.Informer(kube, resource=informers.DEPLOYMENTS, namespace=namespace)
    task = asyncio.create_task(informer.run())
    try:
        await kube.create(base, _deployment("before"))
        await _until(lambda: informer.get(namespace, "before") is not None)
        await kube.create(base, _deployment("after"))
        await kube.patch(f"{base}/before", {"metadata": {"annotations": {"changed": "yes"}}})
        await _until(lambda: informer.get(namespace, "after") is not None)
        await _until(
            lambda: (
                (informer.get(namespace, "before") or {})["metadata"]["annotations"].get("changed") == "yes"
            )
        )
        await kube.request("DELETE", f"{base}/after")
        await _until(lambda: informer.get(namespace, "after") is None)
        stored = informer.get(namespace, "before")
        assert stored is not None
        assert "managedFields" not in stored["metadata"]
        assert "kubectl.kubernetes.io/last-applied-configuration" not in stored["metadata"]["annotations"]
        assert [obj["metadata"]["name"] for obj in informer.items(namespace)] == ["before"]
        assert informer.lists == 1
        assert informer.watches == 1
        assert _count(kube, "list", "deployments") == 1
        assert _count(kube, "watch", "deployments") == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await kube.close()


async def test_an_ended_watch_resumes_from_its_resource_version_without_listing(
    kube_plane: plane_mod.KubePlane, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server ends every watch after one second.
    monkeypatch.setattr(informers, "WATCH_SECONDS", (1, 1))
    kube = await _kube(kube_plane.kubeconfig)
    base = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    informer = informers.Informer(kube, resource=informers.DEPLOYMENTS, namespace=namespace)
    task = asyncio.create_task(informer.run())
    try:
        await informer.synced.wait()
        for i in range(6):
            await kube.create(base, _deployment(f"d{i}"))
            await asyncio.sleep(0.5)
        await _until(lambda: len(informer) == 6)
        await _until(lambda: informer.watches >= 3)
        assert informer.lists == 1
        assert _count(kube, "list", "deployments") == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await kube.close()


async def test_wait_for_returns_once_the_watch_shows_the_condition(
    kube_plane: plane_mod.KubePlane, namespace: str
) -> None:
    kube = await _kube(kube_plane.kubeconfig)
    base = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    informer = informers.Informer(kube, resource=informers.DEPLOYMENTS, namespace=namespace)
    task = asyncio.create_task(informer.run())
    try:
        await kube.create(base, _deployment("api"))

        def marked(obj: dict[str, Any] | None) -> bool:
            return obj is not None and obj["metadata"].get("annotations", {}).get("mark") == "2"

        waiting = asyncio.create_task(informer.wait_for(namespace, "api", marked, timeout_seconds=30))
        await asyncio.sleep(0.2)
        assert not waiting.done()
        await kube.patch(f"{base}/api", {"metadata": {"annotations": {"mark": "1"}}})
        await kube.patch(f"{base}/api", {"metadata": {"annotations": {"mark": "2"}}})
        seen = await waiting
        assert seen is not None and seen["metadata"]["annotations"]["mark"] == "2"
        with pytest.raises(TimeoutError):
            await informer.wait_for(namespace, "api", lambda obj: obj is None, timeout_seconds=0.3)
        gets = _count(kube, "get", "deployments")
        assert gets == 0  # followed on the watch, never polled
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await kube.close()


async def test_namespace_scoped_informers_need_only_namespaced_list_and_watch(
    kube_plane: plane_mod.KubePlane, namespace: str, service_account_kubeconfig: Callable[..., Path]
) -> None:
    rules = [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["list", "watch"]}]
    kubeconfig = service_account_kubeconfig(namespace, rules)
    admin = await _kube(kube_plane.kubeconfig)
    kube = await _kube(kubeconfig)
    cache = informers.Informers(
        kube, namespaces=[namespace], resources=[informers.DEPLOYMENTS, informers.STATEFUL_SETS]
    )
    cache.start()
    try:
        await admin.create(f"/apis/apps/v1/namespaces/{namespace}/deployments", _deployment("api"))
        await _until(lambda: cache.get(informers.DEPLOYMENTS, namespace, "api")[1] is not None)
        assert cache.get(informers.DEPLOYMENTS, namespace, "absent") == (True, None)
        # Not granted: never synced, the reason is kept, and readers are told to ask the API server.
        stateful = f"/apis/apps/v1/namespaces/{namespace}/statefulsets"
        await _until(lambda: "error" in cache.status()[stateful])
        assert "KubeForbidden" in cache.status()[stateful]["error"]
        assert cache.get(informers.STATEFUL_SETS, namespace, "db") == (False, None)
        assert cache.items(informers.STATEFUL_SETS, namespace) is None
        # Another namespace is not covered at all.
        assert cache.get(informers.DEPLOYMENTS, "kube-system", "coredns") == (False, None)
        assert await cache.wait_synced(0.1) is False
    finally:
        await cache.close()
        await kube.close()
        await admin.close()
