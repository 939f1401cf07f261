"""Writing mitigations: the workload PATCH, the HPA PATCH, evictions, in-place resize, dry-run pod creates.

Stage: kube edge (writes). A mitigation's workload body is planned by its action's pure part
(`responder.logic.actions`); the bodies built here (an eviction, a resize, a ledger update) are only the
request's shape around values decided elsewhere, sent with the right content type. Strategic merge patch is used for built-in kinds: containers merge by
name (only the alerted container changes) and `metadata.resourceVersion` in the body is a precondition
(409 when the object changed since it was read). `dry_run` sends `dryRun=All`: the API server runs
validation and admission and persists nothing. It decides nothing.
"""

from __future__ import annotations

import asyncio
import logging
import random
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

from responder.kube import client, errors, fetching
from responder.models import ledgers, quantities, targets

__all__ = [
    "LEDGER_WRITE_ATTEMPTS",
    "create_pod_dry_run",
    "evict_pod",
    "patch_hpa",
    "patch_workload",
    "resize_pod",
    "update_ledger",
]

logger = logging.getLogger(__name__)

LEDGER_WRITE_ATTEMPTS = 10
"""Attempts for a ledger write that records what was already done: losing it would lose the record (and
the cooldown it starts), and retrying costs only a read and a patch."""

LedgerChange = Callable[[list[ledgers.LedgerEntry]], list[ledgers.LedgerEntry] | None]


async def patch_workload(
    kube: client.Kube, target: targets.Target, body: dict[str, Any], *, dry_run: bool = False
) -> client.Body:
    return await kube.patch(fetching.workload_path(target), body, dry_run=dry_run)


async def patch_hpa(
    kube: client.Kube, namespace: str, name: str, body: dict[str, Any], *, dry_run: bool = False
) -> client.Body:
    path = (
        f"/apis/autoscaling/v2/namespaces/{urllib.parse.quote(namespace, safe='')}"
        f"/horizontalpodautoscalers/{urllib.parse.quote(name, safe='')}"
    )
    return await kube.patch(path, body, dry_run=dry_run)


async def evict_pod(kube: client.Kube, namespace: str, name: str, *, dry_run: bool = False) -> None:
    """Evict through the Eviction API (policy/v1), which honours PodDisruptionBudgets (429 → KubePdbBlocked)."""
    body: dict[str, Any] = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": name, "namespace": namespace},
    }
    if dry_run:
        body["deleteOptions"] = {"dryRun": ["All"]}
    await kube.create(f"{fetching.pod_path(namespace, name)}/eviction", body, dry_run=dry_run, eviction=True)


async def create_pod_dry_run(kube: client.Kube, namespace: str, body: dict[str, Any]) -> client.Body:
    """Admit a pod without creating it: ResourceQuota and LimitRange answer as they would for the real pod.

    Skipped (answering `{}`, admitted) when the watch-fed cache shows neither a ResourceQuota nor a LimitRange
    in the namespace: nothing is there to refuse the pod for its resources.
    """
    if fetching.has_no_quota_or_limits(kube, namespace):
        logger.debug("no ResourceQuota or LimitRange in %s: pod pre-check skipped", namespace)
        return {}
    path = f"/api/v1/namespaces/{urllib.parse.quote(namespace, safe='')}/pods"
    return await kube.create(path, body, dry_run=True)


async def resize_pod(
    kube: client.Kube,
    namespace: str,
    name: str,
    *,
    container: str,
    limit_bytes: int,
    request_bytes: int | None,
    dry_run: bool = False,
) -> client.Body:
    """Raise a running container's memory in place through the pod `resize` subresource (Kubernetes >= 1.33)."""
    resources: dict[str, Any] = {"limits": {"memory": quantities.format_bytes(limit_bytes)}}
    if request_bytes is not None:
        resources["requests"] = {"memory": quantities.format_bytes(request_bytes)}
    body = {"spec": {"containers": [{"name": container, "resources": resources}]}}
    return await kube.patch(f"{fetching.pod_path(namespace, name)}/resize", body, dry_run=dry_run)


async def update_ledger(
    kube: client.Kube,
    target: targets.Target,
    change: LedgerChange,
    *,
    attempts: int,
    extra: Mapping[str, Any] | None = None,
    extra_for: Callable[[client.Body], Mapping[str, Any] | None] | None = None,
) -> bool:
    """Read the workload, change its ledger, write it back under the resourceVersion just read.

    For ledger writes that follow an action already taken (the eviction's record, a verification result, a
    notification thread): a 409 means someone wrote in between, so read again and redo rather than re-plan.
    `change` returns None when there is nothing to write (e.g. the entry is already there). `extra` is merged
    into the same PATCH (a revert's container limits); `extra_for(workload)` computes it from the object just
    read instead (a revert only while the raised limit is still there). True when written.
    """
    path = fetching.workload_path(target)
    for attempt in range(attempts):
        if attempt:
            # Controllers write the workload's status in bursts right after a change (a rollout, an
            # eviction's replacement pod): back off a little so the retries do not all land in one burst.
            await asyncio.sleep(min(0.05 * 2**attempt, 1.0) * random.uniform(0.5, 1.0))
        # From the cache when it holds the workload (after a 409, from the API server: `Kube.conflicted`).
        workload = await fetching.read_optional(kube, path)
        if workload is None:
            return False
        metadata = workload.get("metadata") or {}
        updated = change(ledgers.load((metadata.get("annotations") or {}).get(ledgers.ANNOTATION)))
        if updated is None:
            return False
        body: dict[str, Any] = {
            **ledgers.patch_body(metadata.get("resourceVersion"), updated),
            **(extra or {}),
            **((extra_for(workload) or {}) if extra_for is not None else {}),
        }
        try:
            await kube.patch(path, body)
        except errors.KubeConflict:
            continue
        except errors.KubeNotFound:
            return False
        return True
    return False
