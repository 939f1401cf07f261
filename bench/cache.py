"""Cache benchmark: the watch-fed cache's memory per 1,000 cached workloads, and what it costs to fill.

On the test control plane, N Deployments (one container with resources, env, probes and labels like a
typical chart's, 0 replicas so no pods are needed) are created; the deployment controller adds one
ReplicaSet each. A separate process (`python -m bench.cache --child`) connects like the service, starts the
same informers as `serve` with `kubernetes.watch_cache` (every resource, cluster-wide), waits until all have
listed, collects garbage and reports its RSS; its RSS before starting them is the baseline. Done for two
sizes, so that the slope (RSS per 1,000 workloads, i.e. per Deployment and its ReplicaSet) is not the
interpreter's fixed cost. Also reported: the requests the fill took and the objects held.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import cluster, common

NAME = "cache"
SIZES = (1000, 3000)
NAMESPACES = 10


def _deployment(name: str) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": "bench", "tier": "backend"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "labels": {**labels, "helm.sh/chart": "app-1.2.3", "app.kubernetes.io/managed-by": "Helm"},
            "annotations": {
                "meta.helm.sh/release-name": "bench",
                "meta.helm.sh/release-namespace": "default",
            },
        },
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels, "annotations": {"prometheus.io/scrape": "true"}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": f"registry.example.com/team/{name}:1.4.2",
                            "ports": [{"name": "http", "containerPort": 8080}],
                            "env": [{"name": f"SETTING_{i}", "value": f"value-{i}"} for i in range(6)],
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "256Mi"},
                                "limits": {"memory": "512Mi"},
                            },
                            "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}},
                            "livenessProbe": {"httpGet": {"path": "/health", "port": "http"}},
                        }
                    ]
                },
            },
        },
    }


async def _create(api: Any, *, start: int, count: int) -> None:
    from kubernetes_asyncio import client as k8s  # noqa: PLC0415

    apps = k8s.AppsV1Api(api)
    gate = asyncio.Semaphore(16)

    async def one(i: int) -> None:
        async with gate:
            await apps.create_namespaced_deployment(
                f"bench-cache-{i % NAMESPACES}", _deployment(f"app-{i:05d}")
            )

    await asyncio.gather(*(one(i) for i in range(start, start + count)))


async def _replica_sets(api: Any) -> int:
    from kubernetes_asyncio import client as k8s  # noqa: PLC0415

    listed = await k8s.AppsV1Api(api).list_replica_set_for_all_namespaces(limit=1)
    return int(listed.metadata.remaining_item_count or 0) + len(listed.items)


def _measure(kubeconfig: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.cache", "--child", "--kubeconfig", str(kubeconfig)],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
        cwd=common.REPO,
        env={**os.environ, "PYTHONPATH": str(common.REPO)},
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


async def _child(kubeconfig: str) -> dict[str, Any]:
    from responder import metrics as metrics_mod  # noqa: PLC0415
    from responder.kube import client, informers  # noqa: PLC0415
    from responder.models import settings  # noqa: PLC0415

    kube = await client.Kube.connect(
        settings=settings.KubernetesSettings(kubeconfig=kubeconfig, qps=1000, burst=1000),
        metrics=metrics_mod.Metrics(),
    )
    await kube.version()
    gc.collect()
    before = common.rss_bytes(os.getpid())
    cache = informers.Informers(kube)
    t0 = time.perf_counter()
    cache.start()
    synced = await cache.wait_synced(300)
    fill = time.perf_counter() - t0
    gc.collect()
    after = common.rss_bytes(os.getpid())
    # What the store itself holds, and the RSS once the allocator has given back the free pages the lists'
    # parsing left behind (glibc keeps them otherwise): the figures between which the real cost lies.
    held = sum(len(raw) for informer in cache._informers.values() for raw in informer._store.values())
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    trimmed = common.rss_bytes(os.getpid())
    status = cache.status()
    await cache.close()
    await kube.close()
    return {
        "synced": synced,
        "fill_s": fill,
        "rss_before_bytes": before,
        "rss_after_bytes": after,
        "rss_after_trim_bytes": trimmed,
        "stored_json_bytes": held,
        "objects": len(cache),
        "by_resource": {path: s["objects"] for path, s in status.items()},
        "lists": sum(s["lists"] for s in status.values()),
    }


async def _run() -> list[dict[str, Any]]:
    points = []
    with cluster.plane() as kube:
        for i in range(NAMESPACES):
            kube.create_namespace(f"bench-cache-{i}")
        api = await kube.api_client()
        try:
            made = 0
            for size in SIZES:
                await _create(api, start=made, count=size - made)
                made = size
                # Wait for the deployment controller's ReplicaSets, which are cached too.
                deadline = time.perf_counter() + 300
                while time.perf_counter() < deadline:
                    if await _replica_sets(api) >= size:
                        break
                    await asyncio.sleep(1.0)
                measured = _measure(kube.kubeconfig)
                measured["deployments"] = size
                points.append(measured)
        finally:
            await api.close()
    return points


def run(*, quick: bool) -> dict[str, Any]:
    global SIZES  # noqa: PLW0603 - a quick run is a smaller run of the same thing
    if quick:
        SIZES = (100, 300)
    points = asyncio.run(_run())
    low, high = points[0], points[-1]
    span = high["deployments"] - low["deployments"]

    def slope(key: str) -> float:
        grown = (high[key] - high["rss_before_bytes"]) - (low[key] - low["rss_before_bytes"])
        return float(grown / span * 1000 / 2**20)

    per_thousand_mb = slope("rss_after_bytes")
    per_thousand_trimmed_mb = slope("rss_after_trim_bytes")
    stored_mb = (high["stored_json_bytes"] - low["stored_json_bytes"]) / span * 1000 / 2**20
    rows = [
        {
            "name": f"{p['deployments']:,} Deployments: objects cached / RSS before → after → after malloc_trim (MB) "
            "/ fill (s)",
            "value": f"{p['objects']:,} / {p['rss_before_bytes'] / 2**20:.1f} → {p['rss_after_bytes'] / 2**20:.1f} "
            f"→ {p['rss_after_trim_bytes'] / 2**20:.1f} / {p['fill_s']:.1f}",
        }
        for p in points
    ]
    rows += [
        {
            "name": "RSS per 1,000 cached workloads (a Deployment and its ReplicaSet each; slope between the sizes)",
            "value": f"**{per_thousand_mb:.1f} MB**",
        },
        {
            "name": "the same once the allocator has returned the pages the lists' parsing freed (malloc_trim)",
            "value": f"{per_thousand_trimmed_mb:.1f} MB",
        },
        {"name": "compact JSON the store holds per 1,000 cached workloads", "value": f"{stored_mb:.1f} MB"},
    ]
    return {
        "settings": {"sizes": list(SIZES), "namespaces": NAMESPACES},
        "rows": rows,
        "points": points,
        "rss_mb_per_1000_workloads": per_thousand_mb,
        "rss_mb_per_1000_workloads_after_trim": per_thousand_trimmed_mb,
        "stored_mb_per_1000_workloads": stored_mb,
        "notes": [
            "Objects are stored without managedFields and the last-applied-configuration annotation.",
        ],
        "targets": [],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cache", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="100 and 300 Deployments instead of 1,000 and 3,000"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--kubeconfig", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(asyncio.run(_child(args.kubeconfig))))
        return 0
    started = time.perf_counter()
    data = run(quick=args.quick)
    path = common.write_result(NAME, data, quick=args.quick, started=started)
    print(f"wrote {path}")
    for row in data["rows"]:
        print(f"{row['name']}: {row['value']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
