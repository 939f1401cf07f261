"""evict_pod, the I/O part: evict the one hot pod through the Eviction API, then record it on the workload.

Stage: act. Runbook RB-010 solution 4. The eviction goes first: a PodDisruptionBudget may refuse it (429,
`errors.KubePdbBlocked`), and a refused eviction must not leave a ledger entry that would put the workload
in cooldown. The ledger entry follows. It is appended to a fresh read rather than written under the
resourceVersion planned from: the eviction itself makes the controller update the workload's status (a
DaemonSet's at once), so that precondition would fail and the record of an eviction already done would be
lost. A replica racing on the same occurrence finds the entry there and adds none. A bare pod keeps no
ledger: it is going away.
"""

from __future__ import annotations

import logging

from responder.engine.actions import base
from responder.kube import client, patching
from responder.logic.actions import evict_pod as pure
from responder.models import ledgers, mutations, targets

__all__ = ["PART", "carry_out"]

logger = logging.getLogger(__name__)


async def carry_out(
    kube: client.Kube,
    *,
    snapshot: mutations.WorkloadSnapshot,
    mutation: mutations.Mutation[pure.EvictChange],
    dry_run: bool,
) -> client.Body:
    await patching.evict_pod(kube, snapshot.target.namespace, mutation.change.pod, dry_run=dry_run)
    if snapshot.target.kind is targets.WorkloadKind.POD:
        return dict(snapshot.workload)
    if dry_run:
        return await patching.patch_workload(kube, snapshot.target, mutation.workload_patch, dry_run=True)

    already_recorded = False

    def record(entries: list[ledgers.LedgerEntry]) -> list[ledgers.LedgerEntry] | None:
        nonlocal already_recorded
        already_recorded = any(
            e.occurrence == mutation.entry.occurrence and e.action is mutation.entry.action for e in entries
        )
        return None if already_recorded else ledgers.append(entries, mutation.entry)

    written = await patching.update_ledger(
        kube, snapshot.target, record, attempts=patching.LEDGER_WRITE_ATTEMPTS
    )
    if not written and not already_recorded:
        logger.warning(
            "pod evicted but the ledger entry could not be written: the workload kept changing",
            extra={"target": snapshot.target.key, "occurrence_id": mutation.entry.occurrence},
        )
    return dict(snapshot.workload)


PART = base.Mutating(carry_out=carry_out)
