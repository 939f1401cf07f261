"""rollout_restart, the I/O part: send the restartedAt stamp with its ledger entry.

Stage: act. The stamp and its ledger entry are one write under the workload's resourceVersion. A paused
Deployment was already refused by planning (it would not roll out).
"""

from __future__ import annotations

from responder.engine.actions import base
from responder.kube import client, patching
from responder.logic.actions import rollout_restart as pure
from responder.models import mutations

__all__ = ["PART", "carry_out"]


async def carry_out(
    kube: client.Kube,
    *,
    snapshot: mutations.WorkloadSnapshot,
    mutation: mutations.Mutation[pure.RestartChange],
    dry_run: bool,
) -> client.Body:
    return await patching.patch_workload(kube, snapshot.target, mutation.workload_patch, dry_run=dry_run)


PART = base.Mutating(carry_out=carry_out)
