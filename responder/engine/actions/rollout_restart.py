"""rollout_restart: stamp `kubectl.kubernetes.io/restartedAt` on the pod template, as `kubectl rollout restart`.

Stage: act. The stamp and its ledger entry are one write under the workload's resourceVersion. A paused
Deployment was already refused by planning (it would not roll out).
"""

from __future__ import annotations

from responder.kube import client, patching
from responder.logic import planning

__all__ = ["carry_out"]


async def carry_out(
    kube: client.Kube, *, snapshot: planning.WorkloadSnapshot, mutation: planning.Mutation, dry_run: bool
) -> client.Body:
    return await patching.patch_workload(kube, snapshot.target, mutation.workload_patch, dry_run=dry_run)
