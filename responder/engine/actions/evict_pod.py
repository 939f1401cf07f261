"""evict_pod: evict the one hot pod through the Eviction API, then record it on the workload.

Stage: act. Runbook RB-010 solution 4. The eviction goes first: a PodDisruptionBudget may refuse it (429,
`errors.KubePdbBlocked`), and a refused eviction must not leave a ledger entry that would put the workload
in cooldown. The ledger entry follows under the workload's resourceVersion; a replica that loses that race
finds the pod already terminating when it re-plans. A bare pod keeps no ledger: it is going away.
"""

from __future__ import annotations

from responder.kube import client, patching
from responder.logic import planning
from responder.models import targets

__all__ = ["carry_out"]


async def carry_out(
    kube: client.Kube, *, snapshot: planning.WorkloadSnapshot, mutation: planning.Mutation, dry_run: bool
) -> client.Body:
    assert mutation.evict_pod is not None
    await patching.evict_pod(kube, snapshot.target.namespace, mutation.evict_pod, dry_run=dry_run)
    if snapshot.target.kind is targets.WorkloadKind.POD:
        return dict(snapshot.workload)
    return await patching.patch_workload(kube, snapshot.target, mutation.workload_patch, dry_run=dry_run)
