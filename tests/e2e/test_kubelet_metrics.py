"""kwok's fake kubelets report container memory the way a kubelet's resource metrics endpoint does.

Covers: every kwok node serves ``/metrics/nodes/<node>/metrics/resource`` on kwok's address; a container's
``container_memory_working_set_bytes`` (labels container, image, namespace, pod, as cAdvisor's) follows its pod's
``kwok.x-k8s.io/usage-memory`` annotation, changes when the annotation does, and grows by
``oom-responder.test/usage-memory-growth-per-second`` for every second since the pod started.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client
from prometheus_client.parser import text_string_to_metric_families

from tests.kubeplane import incidents
from tests.kubeplane.plane import KubePlane

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

MI = 2**20


async def _working_set(plane: KubePlane, pod: dict[str, Any]) -> float | None:
    path = f"/metrics/nodes/{pod['spec']['nodeName']}/metrics/resource"
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://{plane.kwok_address}{path}") as answer,
    ):
        assert answer.status == 200, await answer.text()
        text = await answer.text()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "container_memory_working_set_bytes" and sample.labels == {
                "container": "app",
                "image": incidents.DEFAULT_IMAGE,
                "namespace": pod["metadata"]["namespace"],
                "pod": pod["metadata"]["name"],
            }:
                return float(sample.value)
    return None


async def _until_value(plane: KubePlane, pod: dict[str, Any], predicate: Any) -> float:
    for _ in range(100):
        value = await _working_set(plane, pod)
        if value is not None and predicate(value):
            return value
        await asyncio.sleep(0.2)
    raise AssertionError(f"working set of {pod['metadata']['name']} never matched; last {value}")


async def test_working_set_follows_the_pod_annotations(
    kube_plane: KubePlane, namespace: str, kube_api: client.ApiClient
) -> None:
    await incidents.create_deployment(
        kube_api, namespace, "steady", replicas=1, pod_annotations={"kwok.x-k8s.io/usage-memory": "40Mi"}
    )
    await incidents.create_deployment(
        kube_api,
        namespace,
        "leaky",
        replicas=1,
        pod_annotations={
            "kwok.x-k8s.io/usage-memory": "10Mi",
            "oom-responder.test/usage-memory-growth-per-second": "1Mi",
        },
    )
    [steady] = await incidents.wait_for_running_pods(kube_api, namespace, selector="app=steady", count=1)
    [leaky] = await incidents.wait_for_running_pods(kube_api, namespace, selector="app=leaky", count=1)

    assert await _until_value(kube_plane, steady, lambda v: v > 0) == 40 * MI

    body: Any = {"metadata": {"annotations": {"kwok.x-k8s.io/usage-memory": "100Mi"}}}
    await client.CoreV1Api(kube_api).patch_namespaced_pod(
        steady["metadata"]["name"], namespace, body, **incidents.MERGE_PATCH
    )
    assert await _until_value(kube_plane, steady, lambda v: v != 40 * MI) == 100 * MI

    # It grows while the pod runs: 1Mi more arrives within a few seconds, never a shrink on the way.
    first = await _until_value(kube_plane, leaky, lambda v: v > 10 * MI)
    seen: list[float] = []

    def grown(value: float) -> bool:
        seen.append(value)
        return value >= first + 1 * MI

    await _until_value(kube_plane, leaky, grown)
    assert seen == sorted(seen)
