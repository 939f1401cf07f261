"""Reading mitigation results back from the API server (test support shared by the mitigation tests)."""

from __future__ import annotations

from typing import Any

from kubernetes_asyncio import client

from responder.models import ledgers
from tests.kubeplane import incidents


async def read_deployment(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    return incidents.to_dict(api, await client.AppsV1Api(api).read_namespaced_deployment(name, namespace))


def memory_limit(workload: dict[str, Any], container: str = "app") -> str:
    for c in workload["spec"]["template"]["spec"]["containers"]:
        if c["name"] == container:
            return str(c["resources"].get("limits", {}).get("memory"))
    raise AssertionError(container)


def ledger_of(workload: dict[str, Any]) -> list[ledgers.LedgerEntry]:
    return ledgers.load((workload["metadata"].get("annotations") or {}).get(ledgers.ANNOTATION))


async def oom_labels(api: client.ApiClient, namespace: str, app: str, count: int) -> dict[str, str]:
    pods = await incidents.wait_for_running_pods(api, namespace, selector=f"app={app}", count=count)
    await incidents.mark_oom_killed(api, pods[0])
    return {"namespace": namespace, "pod": pods[0]["metadata"]["name"], "container": "app"}
