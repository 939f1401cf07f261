"""Verifying that a mitigation took effect: follow the workload's rollout until it completes or fails.

Stage: verify. After a write is accepted, the controllers still have to roll it out, and ResourceQuota or
LimitRange can refuse the new pods (the ReplicaSet or StatefulSet reports `FailedCreate`; the Deployment a
`ReplicaFailure` condition). This module polls the workload until `observedGeneration` caught up and the
updated replicas are all available, or a failure shows, or the deadline passes. Judging one observation is
the pure function `judge`; `follow` does the polling. `Verifier` runs `follow` in the background after a
write, records the verdict in the ledger entry (with the action's own on-failed-rollout hook, e.g. a revert)
and reports it; it does not hold the target's lock, and `close()` waits for it, then cancels what is left.

With the watch-fed cache (`Kube.informers`) the workload is followed on the watch: no request until it
settles. Without it a poll is one GET of the workload. A Deployment needs nothing else: its controller copies a ReplicaSet's
FailedCreate into the `ReplicaFailure` condition `judge` reads. A StatefulSet or DaemonSet reports FailedCreate
only as an Event, which is looked up (by field selector, on that workload alone) every few polls and before
giving up, never with a namespace-wide LIST.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from responder.engine import actions as parts
from responder.engine import quieting, reporting
from responder.kube import client, errors, fetching, patching, throttling
from responder.logic import planning
from responder.models import decisions, ledgers, mutations, settings, targets

__all__ = ["EVENTS_EVERY", "Holder", "Verdict", "Verifier", "follow", "judge"]

logger = logging.getLogger(__name__)

Body = Mapping[str, Any]

EVENTS_EVERY = 5
"""FailedCreate Events are looked up on the first poll without a verdict and then on every this many polls:
a refused pod keeps the rollout from completing, so it is found a few polls late at worst, for a fraction of
the requests."""


@dataclasses.dataclass(frozen=True, slots=True)
class Verdict:
    outcome: decisions.Outcome
    """DONE when the rollout completed, FAILED when it failed or timed out; None while it is in progress."""
    detail: str


def _condition(status: Body, kind: str) -> Body | None:
    for condition in status.get("conditions") or []:
        if condition.get("type") == kind:
            return dict(condition)
    return None


def judge(
    kind: targets.WorkloadKind, workload: Body, *, generation: int, replicas: int | None = None
) -> Verdict | None:
    """The rollout's verdict from one observation of the workload, or None while it is still progressing. Pure.

    `replicas`: the count the written change asks for. Through an HPA's floor it is the HPA controller that
    raises `spec.replicas`, later: until it has, the workload's own count is not the one to verify against.
    """
    spec = workload.get("spec") or {}
    status = workload.get("status") or {}
    if int(status.get("observedGeneration") or 0) < generation:
        return None
    if replicas is not None and int(spec.get("replicas", 1)) < replicas:
        return None
    if kind is targets.WorkloadKind.DEPLOYMENT:
        failure = _condition(status, "ReplicaFailure")
        if failure is not None and failure.get("status") == "True":
            return Verdict(decisions.Outcome.FAILED, f"ReplicaFailure: {failure.get('message', '')}")
        progressing = _condition(status, "Progressing")
        if progressing is not None and progressing.get("reason") == "ProgressDeadlineExceeded":
            return Verdict(
                decisions.Outcome.FAILED, f"ProgressDeadlineExceeded: {progressing.get('message', '')}"
            )
        wanted = int(spec.get("replicas", 1))
        updated = int(status.get("updatedReplicas") or 0)
        total = int(status.get("replicas") or 0)
        available = int(status.get("availableReplicas") or 0)
        if updated >= wanted and total == updated and available >= updated:
            return Verdict(decisions.Outcome.DONE, f"{updated} of {wanted} replicas updated and available")
        return None
    if kind in (targets.WorkloadKind.STATEFUL_SET, targets.WorkloadKind.DAEMON_SET) and (
        (spec.get("updateStrategy") or {}).get("type") == "OnDelete"
    ):
        # OnDelete: the controller replaces no pod; each takes the new template when it is next deleted.
        # Once the controller has seen the change there is nothing left to follow (waiting would only time
        # out, and a revert would undo a change that was accepted).
        return Verdict(
            decisions.Outcome.DONE,
            "OnDelete update strategy: pods take the change when they are next deleted",
        )
    if kind is targets.WorkloadKind.STATEFUL_SET:
        wanted = int(spec.get("replicas", 1))
        ready = int(status.get("readyReplicas") or 0)
        updated = int(status.get("updatedReplicas") or 0)
        # A partitioned rolling update only replaces the pods with an ordinal >= partition (a staged
        # rollout): the others keep the current revision by design, so the revisions never converge.
        partition = int(((spec.get("updateStrategy") or {}).get("rollingUpdate") or {}).get("partition") or 0)
        same_revision = status.get("updateRevision") in (None, status.get("currentRevision"))
        if ready >= wanted and updated >= max(0, wanted - partition) and (same_revision or partition > 0):
            return Verdict(decisions.Outcome.DONE, f"{ready} of {wanted} replicas updated and ready")
        return None
    if kind is targets.WorkloadKind.DAEMON_SET:
        wanted = int(status.get("desiredNumberScheduled") or 0)
        updated = int(status.get("updatedNumberScheduled") or 0)
        available = int(status.get("numberAvailable") or 0)
        if updated >= wanted and available >= wanted:
            return Verdict(decisions.Outcome.DONE, f"{updated} of {wanted} pods updated and available")
        return None
    return Verdict(decisions.Outcome.DONE, f"nothing rolls out for a {kind.value}")


def _reports_failures_as_events(kind: targets.WorkloadKind) -> bool:
    # A Deployment's FailedCreate shows in its ReplicaFailure condition; Jobs and bare pods are not followed.
    return kind in (targets.WorkloadKind.STATEFUL_SET, targets.WorkloadKind.DAEMON_SET)


async def follow(
    kube: client.Kube,
    *,
    target: targets.Target,
    generation: int,
    since: datetime.datetime,
    timeout_seconds: float,
    poll_seconds: float,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    monotonic: Callable[[], float] = time.monotonic,
    events_every: int = EVENTS_EVERY,
    replicas: int | None = None,
) -> Verdict:
    """Poll until the rollout of `generation` (with `replicas` asked for, when the change set a count)
    completes, fails (FailedCreate since `since`), or times out."""
    deadline = monotonic() + timeout_seconds
    path = fetching.workload_path(target)
    events = _reports_failures_as_events(target.kind)
    polls = 0

    def settled(workload: Body | None) -> bool:
        return (
            workload is None
            or judge(target.kind, workload, generation=generation, replicas=replicas) is not None
        )

    while True:
        # From the watch-fed cache when there is one (no request), else one GET.
        workload = await fetching.read_optional(kube, path)
        if workload is None:
            return Verdict(decisions.Outcome.FAILED, f"{target.key} was deleted during the rollout")
        verdict = judge(target.kind, workload, generation=generation, replicas=replicas)
        if verdict is not None:
            return verdict
        expired = monotonic() >= deadline
        if events and (expired or polls % max(1, events_every) == 0):
            failures = await fetching.rollout_failures(kube, target, since=since)
            if failures:
                return Verdict(decisions.Outcome.FAILED, f"FailedCreate: {failures[-1]}")
        if expired:
            return Verdict(
                decisions.Outcome.FAILED, f"the rollout did not complete within {timeout_seconds:g}s"
            )
        polls += 1
        # Followed on the watch: woken by the change that settles it, or after a poll's time to look for
        # FailedCreate Events. Without a cache covering the workload: sleep, then GET again.
        waited = await fetching.await_change(
            kube, path, settled, timeout_seconds=max(0.0, min(poll_seconds, deadline - monotonic()))
        )
        if waited is None:
            await sleep(poll_seconds)


async def record_result(
    kube: client.Kube,
    target: targets.Target,
    entry: ledgers.LedgerEntry,
    result: decisions.Outcome,
    *,
    extra_for: Callable[[client.Body], Mapping[str, Any] | None] | None = None,
) -> bool:
    """Write the verdict into the ledger entry (and, for a revert, `extra_for`'s change) atomically; False
    when nothing was written (nothing changes, the workload is gone, or it kept changing)."""
    if result is entry.result and extra_for is None:
        return False
    return await patching.update_ledger(
        kube,
        target,
        lambda entries: ledgers.with_result(entries, entry, result),
        attempts=patching.LEDGER_WRITE_ATTEMPTS,
        extra_for=extra_for,
    )


class Holder(Protocol):
    """Keeps the pending verification in Kubernetes (`responder.engine.following.Following`): claimed by this
    replica while it follows, cleared once, so a replica that dies leaves it to another to finish."""

    def holding(self, target: targets.Target) -> contextlib.AbstractAsyncContextManager[None]: ...

    async def verified(self, target: targets.Target, *, since: datetime.datetime) -> bool: ...


class Verifier:
    """Follows each written change's rollout in a background task, records and reports the verdict."""

    def __init__(
        self,
        *,
        settings: settings.VerificationSettings,
        kube: client.Kube,
        reporter: reporting.Reporter,
        wrote: Callable[[str], None],
        holder: Holder | None = None,
        quieter: quieting.Quieter | None = None,
    ) -> None:
        self.settings = settings
        self.kube = kube
        self.reporter = reporter
        self.wrote = wrote
        self.holder = holder
        self.quieter = quieter
        self._tasks: set[asyncio.Task[None]] = set()

    def verify_later(
        self,
        run: reporting.Run,
        *,
        mutation: mutations.Mutation[mutations.Change],
        written: client.Body,
        options: object,
    ) -> None:
        generation = int((written.get("metadata") or {}).get("generation") or 0)
        task = asyncio.create_task(
            self._verify(run, mutation, generation, options), name=f"verify:{mutation.plan.target.key}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait(self) -> None:
        """Wait for every rollout being followed (tests; shutdown via `close`)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self, timeout_seconds: float) -> None:
        """Let running verifications finish within `timeout_seconds`, then cancel them."""
        if not self._tasks:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wait(), timeout=timeout_seconds)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _record(
        self,
        target: targets.Target,
        entry: ledgers.LedgerEntry,
        result: decisions.Outcome,
        extra_for: Callable[[client.Body], Mapping[str, Any] | None] | None = None,
    ) -> bool:
        try:
            return await record_result(self.kube, target, entry, result, extra_for=extra_for)
        finally:
            self.wrote(target.key)

    async def _verify(
        self,
        run: reporting.Run,
        mutation: mutations.Mutation[mutations.Change],
        generation: int,
        options: object,
    ) -> None:
        plan = mutation.plan
        target = plan.target
        hook = parts.mutating(plan.action).on_failed_rollout
        held = self.holder.holding(target) if self.holder is not None else contextlib.nullcontext()
        try:
            async with held:
                verdict, said = await self._follow(mutation, generation, options, hook)
        except errors.KubeError as e:
            verdict = Verdict(decisions.Outcome.FAILED, f"could not follow the rollout: {e.message}")
            said = None
        except Exception:
            logger.exception("verifying %s failed", target.key)
            return
        if self.holder is not None and not await self.holder.verified(target, since=mutation.entry.at):
            return  # another replica took the verification over (this one hung) and reported it
        self._report(run, mutation, verdict, said)
        # This task holds up nothing: in a storm its Event waits for the mitigations' requests to go first.
        with throttling.in_background():
            await self.reporter.record_event(
                run,
                plan.action,
                verdict.outcome,
                decisions.Reason.ROLLOUT_COMPLETE
                if verdict.outcome is decisions.Outcome.DONE
                else decisions.Reason.ROLLOUT_FAILED,
                f"verification: {verdict.detail + (said or '')}",
                verb="verify",
            )
        silence_id = mutation.entry.silence
        if verdict.outcome is not decisions.Outcome.DONE and silence_id and self.quieter is not None:
            # The mitigation did not take: the alert must be heard again now, not at the silence's end.
            line = await self.quieter.expire(
                silence_id, why=f"the rollout of {planning.describe(plan)} failed"
            )
            self.reporter.silenced(run, plan.action, line=line, silence_id=silence_id)

    def _report(
        self,
        run: reporting.Run,
        mutation: mutations.Mutation[mutations.Change],
        verdict: Verdict,
        said: str | None,
    ) -> None:
        plan = mutation.plan
        done = verdict.outcome is decisions.Outcome.DONE
        self.reporter.verified(
            run,
            plan,
            outcome=verdict.outcome,
            summary=f"{planning.describe(plan)}: rollout {'completed' if done else 'failed'}",
            detail=verdict.detail + (said or ""),
        )

    async def _follow(
        self,
        mutation: mutations.Mutation[mutations.Change],
        generation: int,
        options: object,
        hook: Any,
    ) -> tuple[Verdict, str | None]:
        target = mutation.plan.target
        verdict = await follow(
            self.kube,
            target=target,
            generation=generation,
            since=mutation.entry.at,
            timeout_seconds=self.settings.timeout_seconds,
            poll_seconds=self.settings.poll_seconds,
            replicas=mutation.change.expected_replicas,
        )
        said: str | None = None
        if verdict.outcome is decisions.Outcome.FAILED and hook is not None:

            async def record(extra_for: Callable[[client.Body], Mapping[str, Any] | None] | None) -> bool:
                return await self._record(target, mutation.entry, verdict.outcome, extra_for)

            said = await hook(target=target, mutation=mutation, options=options, record=record)
        if said is None:
            await self._record(target, mutation.entry, verdict.outcome)
        return verdict, said
