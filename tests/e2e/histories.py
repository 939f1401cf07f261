"""History from before the end-to-end stack started, backfilled into its Prometheus (test support).

What a real cluster's Prometheus would already hold when an alert arrives: here, the hours a workload's
previous pod spent leaking, so the memory analysis has a pattern to name.
"""

from __future__ import annotations

import dataclasses

from tests.kubeplane import incidents
from tests.promstack import stack as promstack

__all__ = ["LeakHistory", "leak_history"]

MI = 2**20


@dataclasses.dataclass(frozen=True)
class LeakHistory:
    namespace: str
    deployment: str
    series: list[promstack.Series]


def leak_history(namespace: str, *, now: float) -> LeakHistory:
    """8 hours of a container leaking 10Mi an hour towards its 128Mi limit, ending 15 minutes ago when a rollout
    replaced the pod (a Deployment's pod name, so the analysis reads it as one of the workload's pods)."""
    deployment, pod = "leaky", "leaky-5d8f7c9b6d-h1st0"
    start, end, step = now - 8 * 3600, now - 15 * 60, 60.0
    times = [start + i * step for i in range(int((end - start) // step) + 1)]
    working_set = [(t, 20 * MI + (t - start) / 3600 * 10 * MI) for t in times]
    cadvisor = {
        "namespace": namespace,
        "pod": pod,
        "container": "app",
        "image": incidents.DEFAULT_IMAGE,
        "job": "kubelet",
    }
    ksm = {"namespace": namespace, "pod": pod, "container": "app", "job": "kube-state-metrics"}
    return LeakHistory(
        namespace=namespace,
        deployment=deployment,
        series=[
            promstack.Series("container_memory_working_set_bytes", cadvisor, working_set),
            # Heap, not page cache: the resident set grows with it.
            promstack.Series("container_memory_rss", cadvisor, [(t, 0.9 * v) for t, v in working_set]),
            promstack.Series(
                "kube_pod_container_resource_limits",
                {**ksm, "resource": "memory", "unit": "byte"},
                [(t, 128.0 * MI) for t in times],
            ),
            promstack.Series("kube_pod_container_status_restarts_total", ksm, [(t, 0.0) for t in times]),
        ],
    )
