"""scale_out: more replicas, or a higher HPA floor when an HPA owns the replica count.

Stage: act. Runbook RB-010 step 2, option B. Without an HPA, `spec.replicas` and the ledger entry are one
strategic merge patch on the workload under its resourceVersion: one atomic write (the `scale` subresource
cannot carry the ledger annotation, so using it would split the change from its record).
With an HPA, the change lives on another object: the ledger entry is written first on the workload, under
its resourceVersion, which claims the action exactly once across replicas; then the HPA's minReplicas is
patched under the HPA's resourceVersion. If that second write fails, the engine marks the entry failed.
"""

from __future__ import annotations

from responder.kube import client, patching
from responder.logic import planning

__all__ = ["carry_out"]


async def carry_out(
    kube: client.Kube, *, snapshot: planning.WorkloadSnapshot, mutation: planning.Mutation, dry_run: bool
) -> client.Body:
    written = await patching.patch_workload(kube, snapshot.target, mutation.workload_patch, dry_run=dry_run)
    if mutation.hpa_patch is not None and mutation.hpa_name is not None:
        await patching.patch_hpa(
            kube, snapshot.target.namespace, mutation.hpa_name, mutation.hpa_patch, dry_run=dry_run
        )
    return written
