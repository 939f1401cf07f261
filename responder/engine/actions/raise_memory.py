"""raise_memory, the I/O part: pre-check the new pod, write the new limit, resize in place, revert on failure.

Stage: act. Runbook RB-010 step 2, option A. The template change and its ledger entry are one strategic
merge patch under the workload's resourceVersion. Must not choose the new value
(`responder.logic.actions.raise_memory` did).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from responder.engine.actions import base
from responder.kube import client, errors, patching
from responder.logic.actions import raise_memory as pure
from responder.models import actions, decisions, mutations, targets

__all__ = ["PART", "carry_out", "on_failed_rollout", "precheck", "resize_in_place"]

logger = logging.getLogger(__name__)

Mutation = mutations.Mutation[pure.MemoryChange]


async def precheck(
    kube: client.Kube, *, snapshot: mutations.WorkloadSnapshot, mutation: Mutation
) -> decisions.Decision | None:
    """A server-side dry-run create of a pod from the new template; a refusal, or None when it would be admitted.

    Quota and LimitRange are enforced on pods only: without this, the Deployment would accept the raise and
    its ReplicaSet would then fail to create pods (FailedCreate), leaving the workload short of replicas.
    """
    try:
        await patching.create_pod_dry_run(
            kube, snapshot.target.namespace, pure.dry_run_pod(snapshot, mutation.change)
        )
    except errors.KubeForbidden as e:
        # ResourceQuota and LimitRange refusals are 403s, and so is RBAC's (no `create pods`): told apart, so
        # the on-call engineer looks at quotas, limits or the service's Role as the case is.
        return decisions.Decision.refuse(errors.reason_for(e), e.message)
    except errors.KubeInvalid as e:
        # 422: a template the API refuses outright.
        return decisions.Decision.refuse(decisions.Reason.INVALID, e.message)
    return None


async def carry_out(
    kube: client.Kube, *, snapshot: mutations.WorkloadSnapshot, mutation: Mutation, dry_run: bool
) -> client.Body:
    return await patching.patch_workload(kube, snapshot.target, mutation.workload_patch, dry_run=dry_run)


async def resize_in_place(
    kube: client.Kube,
    *,
    snapshot: mutations.WorkloadSnapshot,
    mutation: Mutation,
    options: actions.RaiseMemory,
    dry_run: bool,
) -> str:
    """Raise the running pod's limit through the `resize` subresource, so it survives until the rollout
    replaces it. Best effort: the template change is what persists. Returns a line for the notice."""
    if not options.resize_in_place:
        return ""
    pod = snapshot.pod
    if pod is None:
        return "in-place resize skipped: the pod is gone"
    name = str((pod.get("metadata") or {}).get("name"))
    change = mutation.change
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


async def on_failed_rollout(
    *, target: targets.Target, mutation: Mutation, options: actions.RaiseMemory, record: base.RecordResult
) -> str | None:
    """With `revert_on_failure`: write the previous limit back with the failed result, unless the limit was
    changed since the raise (writing the old value over someone's fix would undo it)."""
    if not options.revert_on_failure:
        return None
    change = mutation.change
    current: list[bool] = []

    def revert_patch(workload: client.Body) -> Mapping[str, Any] | None:
        # Decided on the object read for the write it goes into: someone may have changed the limit while the
        # rollout was followed.
        current[:] = [pure.still_raised(mutations.WorkloadSnapshot(target=target, workload=workload), change)]
        return pure.revert_patch(change) if current[0] else None

    if not await record(revert_patch):
        return " Not reverted: the workload could not be written."
    if current == [True]:
        return f" Reverted to {mutation.plan.from_value}."
    return " Not reverted: the limit was changed since the raise."


PART = base.Mutating(
    carry_out=carry_out, precheck=precheck, after_write=resize_in_place, on_failed_rollout=on_failed_rollout
)
