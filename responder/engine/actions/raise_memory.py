"""raise_memory: pre-check the new pod against ResourceQuota and LimitRange, then write the new limit.

Stage: act. Runbook RB-010 step 2, option A. The template change and its ledger entry are one strategic
merge patch under the workload's resourceVersion. Must not choose the new value (planning did).
"""

from __future__ import annotations

import logging

from responder.kube import client, errors, patching
from responder.logic import planning
from responder.models import decisions

__all__ = ["carry_out", "precheck", "resize_in_place"]

logger = logging.getLogger(__name__)


async def precheck(
    kube: client.Kube, *, snapshot: planning.WorkloadSnapshot, change: planning.MemoryChange
) -> decisions.Decision | None:
    """A server-side dry-run create of a pod from the new template; a refusal, or None when it would be admitted.

    Quota and LimitRange are enforced on pods only: without this, the Deployment would accept the raise and
    its ReplicaSet would then fail to create pods (FailedCreate), leaving the workload short of replicas.
    """
    try:
        await patching.create_pod_dry_run(
            kube, snapshot.target.namespace, planning.dry_run_pod(snapshot, change)
        )
    except errors.KubeForbidden as e:
        return decisions.Decision.refuse(decisions.Reason.QUOTA_REFUSED, e.message)
    except errors.KubeInvalid as e:
        # LimitRange violations come back as 403 Forbidden too; 422 is a template the API refuses outright.
        return decisions.Decision.refuse(decisions.Reason.INVALID, e.message)
    return None


async def carry_out(
    kube: client.Kube, *, snapshot: planning.WorkloadSnapshot, mutation: planning.Mutation, dry_run: bool
) -> client.Body:
    return await patching.patch_workload(kube, snapshot.target, mutation.workload_patch, dry_run=dry_run)


async def resize_in_place(
    kube: client.Kube, *, snapshot: planning.WorkloadSnapshot, change: planning.MemoryChange, dry_run: bool
) -> str:
    """Raise the running pod's limit through the `resize` subresource, so it survives until the rollout
    replaces it. Best effort: the template change is what persists. Returns a line for the notice."""
    pod = snapshot.pod
    if pod is None:
        return "in-place resize skipped: the pod is gone"
    name = str((pod.get("metadata") or {}).get("name"))
    try:
        await patching.resize_pod(
            kube,
            snapshot.target.namespace,
            name,
            container=change.container,
            limit_bytes=change.limit_to,
            request_bytes=change.request_to,
            dry_run=dry_run,
        )
    except errors.KubeError as e:
        logger.info("in-place resize of %s refused: %s", name, e.message)
        return f"in-place resize of {name} refused: {e.message}"
    return f"pod {name} resized in place"
