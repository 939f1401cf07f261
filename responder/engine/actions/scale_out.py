"""scale_out, the I/O part: write spec.replicas, or the ledger entry and then the HPA's minReplicas.

Stage: act. Runbook RB-010 step 2, option B. Without an HPA, `spec.replicas` and the ledger entry are one
strategic merge patch on the workload under its resourceVersion: one atomic write (the `scale` subresource
cannot carry the ledger annotation, so using it would split the change from its record).
With an HPA, the change lives on another object: the ledger entry is written first on the workload, under
its resourceVersion, which claims the action exactly once across replicas; then the HPA's minReplicas is
patched (without a precondition: its controller rewrites its status every sync). If that second write
fails, the entry already claiming the action is marked failed here before the error goes up.
"""

from __future__ import annotations

import contextlib

from responder.engine.actions import base
from responder.kube import client, errors, patching
from responder.logic.actions import scale_out as pure
from responder.models import decisions, ledgers, mutations

__all__ = ["PART", "carry_out"]


async def carry_out(
    kube: client.Kube,
    *,
    snapshot: mutations.WorkloadSnapshot,
    mutation: mutations.Mutation[pure.ScaleChange],
    dry_run: bool,
) -> client.Body:
    written = await patching.patch_workload(kube, snapshot.target, mutation.workload_patch, dry_run=dry_run)
    change = mutation.change
    if change.hpa_name is None or change.hpa_patch is None:
        return written
    try:
        await patching.patch_hpa(
            kube, snapshot.target.namespace, change.hpa_name, change.hpa_patch, dry_run=dry_run
        )
    except errors.KubeError:
        if not dry_run:
            with contextlib.suppress(errors.KubeError):
                await patching.update_ledger(
                    kube,
                    snapshot.target,
                    lambda entries: ledgers.with_result(entries, mutation.entry, decisions.Outcome.FAILED),
                    attempts=patching.LEDGER_WRITE_ATTEMPTS,
                )
        raise
    return written


PART = base.Mutating(carry_out=carry_out)
