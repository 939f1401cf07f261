"""Workloads with a day of memory history, one per pattern, as kube-prometheus-stack would have recorded them.

Each scenario is one workload in the namespace `promstack`: cAdvisor's `container_memory_working_set_bytes`
and `container_memory_rss` (with `image`, as the kubelet exports them), and kube-state-metrics'
`kube_pod_container_resource_limits{resource="memory"}` and `kube_pod_container_status_restarts_total`, for
every pod the workload had in the window, replaced ones included. Deterministic (fixed seeds); the window
ends at the `end` given (Unix seconds).
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from collections.abc import Callable

import numpy as np

from tests.promstack.stack import Series

__all__ = ["NAMESPACE", "SCENARIOS", "Scenario", "build"]

NAMESPACE = "promstack"
MI = 2**20
STEP = 60.0
HOURS = 24


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    """The workload's name (in `NAMESPACE`)."""
    kind: str
    """Deployment, StatefulSet or DaemonSet."""
    container: str
    limit_bytes: int
    expected: str
    """The pattern the classifier should name (a `Pattern` value)."""
    series: list[Series]


@dataclasses.dataclass
class _Pod:
    name: str
    start: float
    end: float
    values: Callable[[np.ndarray], np.ndarray]
    """Working set (bytes) as a function of the container's age in seconds."""
    restarts_at: tuple[float, ...] = ()
    """Container restarts (OOM kills): the age counts from the last one."""
    gaps: tuple[tuple[float, float], ...] = ()
    """(from, to) Unix seconds without scrapes."""


def _pod_series(pod: _Pod, *, container: str, limit: int, seed: int, rss_share: float = 0.9) -> list[Series]:
    rng = np.random.default_rng(seed)
    t = np.arange(math.ceil(pod.start / STEP) * STEP, pod.end + 1, STEP)
    starts = np.array([pod.start, *pod.restarts_at])
    began = starts[np.searchsorted(starts, t, side="right") - 1]
    ws = pod.values(t - began) * (1 + rng.normal(0, 0.01, t.size))
    keep = np.ones(t.size, dtype=bool)
    for a, b in pod.gaps:
        keep &= ~((t >= a) & (t < b))
    # The kubelet has no sample while the container is being restarted.
    for r in pod.restarts_at:
        keep &= ~((t >= r) & (t < r + 90))
    labels = {"namespace": NAMESPACE, "pod": pod.name, "container": container}
    cadvisor = {**labels, "image": f"registry.example/{container}:1.0", "id": f"/kubepods/{pod.name}"}
    restarts = np.searchsorted(np.array(pod.restarts_at), t, side="right").astype(float)
    return [
        Series(
            "container_memory_working_set_bytes",
            cadvisor,
            list(zip(t[keep].tolist(), ws[keep].tolist(), strict=True)),
        ),
        Series(
            "container_memory_rss",
            cadvisor,
            list(zip(t[keep].tolist(), (ws[keep] * rss_share).tolist(), strict=True)),
        ),
        Series(
            "kube_pod_container_resource_limits",
            {**labels, "resource": "memory", "unit": "byte", "node": "kwok-node-0", "uid": f"uid-{pod.name}"},
            [(float(x), float(limit)) for x in t[::5]],
        ),
        Series(
            "kube_pod_container_status_restarts_total",
            {**labels, "uid": f"uid-{pod.name}"},
            list(zip(t[::1].tolist(), restarts.tolist(), strict=True)),
        ),
    ]


def _linear(base: float, per_hour: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda age: base + per_hour * age / 3600


def build(end: float) -> dict[str, Scenario]:
    """Every scenario, the window ending at `end`."""
    start = end - HOURS * 3600
    out: list[Scenario] = []

    def add(
        name: str, kind: str, expected: str, limit: int, pods: list[_Pod], *, container: str = "app"
    ) -> None:
        series = [
            s
            for i, pod in enumerate(pods)
            for s in _pod_series(
                pod, container=container, limit=limit, seed=zlib.crc32(f"{name}-{i}".encode())
            )
        ]
        out.append(Scenario(name, kind, container, limit, expected, series))

    # Two replicas leaking 10 MiB/h since a deploy 2 h before the window.
    add(
        "linear-api",
        "Deployment",
        "linear_leak",
        1024 * MI,
        [
            _Pod("linear-api-7d9f8b6c5d-x2x4q", start - 2 * 3600, end, _linear(400 * MI, 10 * MI)),
            _Pod("linear-api-7d9f8b6c5d-p8k2n", start - 2 * 3600, end, _linear(420 * MI, 10 * MI)),
        ],
    )
    # Same prefix, another workload: must never be read for linear-api.
    add(
        "linear-api-gateway",
        "Deployment",
        "stable",
        1024 * MI,
        [_Pod("linear-api-gateway-5f6d7c8b9-zzzzz", start, end, lambda age: 300 * MI + 0 * age)],
    )
    add(
        "sawtooth-worker",
        "Deployment",
        "sawtooth_leak",
        1024 * MI,
        [
            _Pod(
                "sawtooth-worker-6c8d9f7b4-q7w9e",
                start - 3600,
                end,
                lambda age: 300 * MI + 8 * MI * age / 3600 + 80 * MI * (np.mod(age, 1800) / 1800),
            )
        ],
    )
    add(
        "accelerating-queue",
        "Deployment",
        "accelerating",
        2048 * MI,
        [
            _Pod(
                "accelerating-queue-58b7c6d9f-l3m4n",
                start,
                end,
                lambda age: 300 * MI + 0.8 * MI * (age / 3600) ** 2,
            )
        ],
    )
    add(
        "spike-batch",
        "Deployment",
        "spike",
        1024 * MI,
        [
            _Pod(
                "spike-batch-7b9c8d6f5-r5t6y",
                start,
                end,
                lambda age: np.where(age > 18 * 3600, 750 * MI, 400 * MI),
            )
        ],
    )
    add(
        "stable-web",
        "Deployment",
        "stable",
        512 * MI,
        [
            _Pod("stable-web-5d6f7c8b9-a1b2c", start - 86400, end, lambda age: 250 * MI + 0 * age),
            _Pod("stable-web-5d6f7c8b9-d3e4f", start - 86400, end, lambda age: 260 * MI + 0 * age),
        ],
    )
    # A StatefulSet leaking until it is OOM-killed every ~7 h, with scrape gaps.
    kills = (start + 4 * 3600, start + 11 * 3600, start + 18 * 3600)
    add(
        "gappy-cache",
        "StatefulSet",
        "linear_leak",
        1024 * MI,
        [
            _Pod(
                "gappy-cache-0",
                start - 3 * 3600,
                end,
                _linear(300 * MI, 100 * MI),
                restarts_at=kills,
                gaps=((start + 2 * 3600, start + 2.5 * 3600), (start + 14 * 3600, start + 15 * 3600)),
            )
        ],
    )
    # A rollout replaced the pod halfway: the old pod's history counts too.
    add(
        "replaced-api",
        "Deployment",
        "linear_leak",
        1024 * MI,
        [
            _Pod("replaced-api-6f5d4c3b2-old01", start - 3600, start + 12 * 3600, _linear(350 * MI, 12 * MI)),
            _Pod("replaced-api-8a7b6c5d4-new01", start + 12 * 3600, end, _linear(350 * MI, 12 * MI)),
        ],
    )
    return {s.name: s for s in out}


SCENARIOS = tuple(build(0.0))
"""Names of the scenarios `build` returns."""
