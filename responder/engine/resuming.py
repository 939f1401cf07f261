"""Finishing what another replica left: a record written ahead of a write, a rollout being verified.

Stage: follow. A record whose writer let go of it before confirming it is confirmed from the workload's
ledger (or dropped: the write never happened). A rollout verification whose replica died is followed to
its end by the replica that claimed it: the result goes into the ledger entry (with the revert of a failed
raise when the playbook asks), a failed one expires the mitigation's silence, and it is reported once.
This module never takes a verdict and never restarts a workload.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from responder.engine import announcing, verifying
from responder.kube import client, errors, patching
from responder.kube import follow_ups as store_mod
from responder.logic import following
from responder.logic.actions import raise_memory
from responder.models import decisions, follow_ups, ledgers, mutations, notices

__all__ = ["Resuming"]

logger = logging.getLogger(__name__)


class Resuming(announcing.Announcing):
    """Confirms records written ahead and finishes rollout verifications taken over."""

    async def _confirm(
        self, record: follow_ups.FollowUp, workload: client.Body
    ) -> follow_ups.FollowUp | None:
        """A record written ahead of a mitigation whose writer let go of it (died, or the write failed with
        no answer): the workload's ledger says whether the write happened. Confirmed, it goes on from here
        (the rollout of the workload's current generation is followed); otherwise it is dropped."""
        metadata = workload.get("metadata") or {}
        entries = ledgers.load((metadata.get("annotations") or {}).get(ledgers.ANNOTATION))
        written = any(e.occurrence == record.incident and e.action is record.action for e in entries)
        pods: list[client.Body] = []
        if written:
            with contextlib.suppress(errors.KubeError):
                pods = await self._pods(record.target, workload)
        generation = int(metadata.get("generation") or 0)

        def change(current: follow_ups.FollowUp) -> follow_ups.FollowUp | store_mod._Delete | None:
            if current.incident != record.incident or current.confirmed:
                return None
            if not written:
                return store_mod.DELETE
            update: dict[str, object] = {
                "confirmed": True,
                "restarts": following.restart_counts(pods, container=current.container),
            }
            if current.verification is not None and current.verification.generation == 0:
                update["verification"] = current.verification.model_copy(update={"generation": generation})
            return current.model_copy(update=update)

        applied, after = await self._commit(record.target, change)
        if applied and not written:
            logger.info(
                "the mitigation of %s was never written: its follow-up is dropped",
                record.target.key,
                extra={"target": record.target.key, "incident": record.incident},
            )
        return after if applied and written else None

    async def _verify(
        self,
        record: follow_ups.FollowUp,
        verification: follow_ups.Verification,
        *,
        workload: client.Body,
        taken_over_from: str | None,
    ) -> None:
        target = record.target
        now = self.clock()
        renewing = asyncio.create_task(self._renew(target), name=f"renew:{target.key}")
        try:
            verdict = await verifying.follow(
                self.kube,
                target=target,
                generation=verification.generation,
                since=verification.since,
                timeout_seconds=max(0.0, (verification.deadline - now).total_seconds()),
                poll_seconds=self.settings.verification.poll_seconds,
            )
        finally:
            renewing.cancel()
            await asyncio.gather(renewing, return_exceptions=True)
        reverted = await self._record_result(record, verification, verdict.outcome)

        def change(current: follow_ups.FollowUp) -> follow_ups.FollowUp | None:
            if current.verification != verification:
                return None
            return current.model_copy(update={"verification": None})

        applied, _ = await self._commit(target, change)
        if not applied:
            return
        detail = verdict.detail + reverted
        if taken_over_from:
            detail += f" Picked up by {self.identity} after {taken_over_from} stopped following it."
        failed = verdict.outcome is decisions.Outcome.FAILED
        if failed:
            # The mitigation did not take: the alert must be heard again now, not at the silence's end.
            detail += await self._expire_silence(
                record,
                announcing.ledger_entries(workload),
                why=f"the rollout of {verification.summary} failed",
            )
        if failed:
            self.metrics.actions.labels(
                record.playbook, verification.action.value, decisions.Outcome.FAILED.value
            ).inc()
        self._notify(
            record,
            kind=notices.NoticeKind.VERIFICATION,
            summary=f"{verification.summary}: rollout {'failed' if failed else 'completed'}",
            detail=detail,
            outcome=verdict.outcome,
            action=verification.action,
            reason=decisions.Reason.ROLLOUT_FAILED if failed else decisions.Reason.ROLLOUT_COMPLETE,
            from_value=verification.from_value,
            to_value=verification.to_value,
        )
        await self._event(
            record,
            verb="verify",
            reason=f"{verdict.outcome.value}:{(decisions.Reason.ROLLOUT_FAILED if failed else decisions.Reason.ROLLOUT_COMPLETE).value}"
            if failed
            else verdict.outcome.value,
            note=f"[{record.playbook}] verification: {detail}",
            warning=failed,
        )

    async def _record_result(
        self, record: follow_ups.FollowUp, verification: follow_ups.Verification, outcome: decisions.Outcome
    ) -> str:
        """The verification's result into the mitigation's ledger entry (and the revert of a failed raise,
        in the same write); the sentence to add to the notice about a revert."""
        change = None
        if (
            outcome is decisions.Outcome.FAILED
            and verification.revert_on_failure
            and verification.container is not None
            and verification.limit_to is not None
        ):
            change = raise_memory.MemoryChange(
                container=verification.container,
                limit_from=verification.limit_from,
                limit_to=verification.limit_to,
                request_from=verification.request_from,
                request_to=verification.request_to,
            )
        still: list[bool] = []

        def ledger_change(entries: list[ledgers.LedgerEntry]) -> list[ledgers.LedgerEntry] | None:
            updated = [
                entry.model_copy(update={"result": outcome})
                if entry.occurrence == record.incident
                and entry.action is verification.action
                and entry.result is not outcome
                else entry
                for entry in entries
            ]
            return updated if updated != entries or change is not None else None

        def revert_patch(workload: client.Body) -> dict[str, object] | None:
            if change is None:
                return None
            still[:] = [
                raise_memory.still_raised(
                    mutations.WorkloadSnapshot(target=record.target, workload=workload), change
                )
            ]
            return raise_memory.revert_patch(change) if still[0] else None

        written = await patching.update_ledger(
            self.kube,
            record.target,
            ledger_change,
            attempts=patching.LEDGER_WRITE_ATTEMPTS,
            extra_for=revert_patch if change is not None else None,
        )
        if change is None:
            return ""
        if not written:
            return " Not reverted: the workload could not be written."
        if still == [True]:
            return f" Reverted to {verification.from_value}."
        return " Not reverted: the limit was changed since the raise."
