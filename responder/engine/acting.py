"""Acting on a plan: guard → precheck → reserve budget → write → (on failure) return the budget.

Stage: act. `Actor.act` carries out one planned mutation through its action's I/O part
(`responder.engine.actions`), reporting the outcome once through the `Reporter`; a write that lost a
resourceVersion race raises `Replan` (the caller re-reads, re-checks and re-plans). `Actor.act_additional`
carries out the non-mutating actions (diagnostics, escalation) beside it. A preview (`oom-responder plan`)
walks the same path with a muted reporter and stops before anything would be reserved or written.
It never catches `ApiException` (only `responder.kube.errors`) and never swallows `CancelledError`.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from collections.abc import Callable
from typing import Protocol

from responder.engine import actions as parts
from responder.engine import quieting, reporting
from responder.engine.actions import base
from responder.kube import client, errors, patching
from responder.logic import budgeting, planning
from responder.models import actions, cluster_state, decisions, ledgers, mutations, settings, targets

__all__ = ["Acted", "Actor", "FollowUps", "Guard", "Replan", "StateStore", "Verifier"]

logger = logging.getLogger(__name__)


class Replan(Exception):
    """The write lost a resourceVersion race (409): someone wrote first; re-read, re-check and re-plan."""

    def __init__(self, key: str, *, counted: bool) -> None:
        super().__init__(key)
        self.counted = counted
        """The workload was counted in the blast radius before the write was refused."""


class Guard(Protocol):
    def __call__(
        self,
        *,
        plan: decisions.Plan,
        snapshot: cluster_state.TargetSnapshot,
        cluster: cluster_state.ClusterState,
        settings: settings.Settings,
        now: datetime.datetime,
    ) -> decisions.Decision: ...


class StateStore(Protocol):
    """The cluster-wide guardrail state (`responder.kube.state.StateStore`)."""

    async def read(self) -> cluster_state.ClusterState: ...

    def last_known(self) -> cluster_state.ClusterState | None: ...

    async def note_alerting(
        self, target: targets.Target, *, now: datetime.datetime
    ) -> tuple[cluster_state.ClusterState, cluster_state.BreakerTransition | None]: ...

    async def reserve(self, *, now: datetime.datetime) -> decisions.Decision: ...

    async def count_and_reserve(
        self, target: targets.Target, *, now: datetime.datetime
    ) -> tuple[decisions.Decision, cluster_state.BreakerTransition | None]: ...

    async def return_budget(self, *, now: datetime.datetime) -> None: ...


class Verifier(Protocol):
    """Follows a written change's rollout in the background (`responder.engine.verifying.Verifier`)."""

    def verify_later(
        self,
        run: reporting.Run,
        *,
        mutation: mutations.Mutation[mutations.Change],
        written: client.Body,
        options: object,
    ) -> None: ...


class FollowUps(base.FollowUps, Protocol):
    """Where what happens after a mitigation is kept (`responder.engine.following.Following`)."""

    async def before_write(
        self,
        run: reporting.Run,
        *,
        snapshot: mutations.WorkloadSnapshot,
        mutation: mutations.Mutation[mutations.Change],
    ) -> None: ...

    async def write_failed(
        self, mutation: mutations.Mutation[mutations.Change], *, maybe_written: bool
    ) -> None: ...

    async def after_mitigation(
        self,
        run: reporting.Run,
        *,
        mutation: mutations.Mutation[mutations.Change],
        written: client.Body,
        options: object,
        summary: str,
        follows_rollout: bool,
    ) -> None: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Acted:
    """How acting on one plan ended."""

    decision: decisions.Decision
    """Allowed (with what followed the write) or the refusal that stopped it."""
    summary: str | None = None
    """What was done, in one line; None when nothing was written (blocked or refused, already reported)."""
    counted: bool = False
    """The workload was counted in the blast radius on the way (`count` was given and its write happened)."""


class Actor:
    def __init__(
        self,
        *,
        settings: settings.Settings,
        kube: client.Kube,
        state_store: StateStore,
        reporter: reporting.Reporter,
        verifier: Verifier | None,
        clock: Callable[[], datetime.datetime],
        guard: Guard,
        wrote: Callable[[str], None],
        preview: bool = False,
        follow_ups: FollowUps | None = None,
        quieter: quieting.Quieter | None = None,
    ) -> None:
        """`wrote(key)` is told after every write (or attempt) on a workload; `verifier` None follows nothing.
        With `preview`, nothing is reserved or written and the reporter should be muted."""
        self.settings = settings
        self.kube = kube
        self.state_store = state_store
        self.reporter = reporter
        self.verifier = verifier
        self.clock = clock
        self.guard = guard
        self.wrote = wrote
        self.preview = preview
        self.follow_ups = follow_ups
        self.quieter = quieter
        self.identity = reporter.identity

    @property
    def dry_run(self) -> bool:
        return self.preview or self.settings.mode is settings.Mode.DRY_RUN

    async def count(self, target: targets.Target) -> cluster_state.ClusterState | None:
        """Count `target` in the blast radius on its own write; the state it left (None: not counted, said in
        the log: the breaker is a guardrail on top of the budget, and the alert is still answered)."""
        try:
            cluster, transition = await self.state_store.note_alerting(target, now=self.clock())
        except errors.KubeError as e:
            logger.warning("could not count %s in the blast radius: %s", target.key, e.message)
            return None
        self.told(transition, target=target)
        return cluster

    def told(self, transition: cluster_state.BreakerTransition | None, *, target: targets.Target) -> None:
        """Announce the breaker's transition this process's write made (each is told to one caller only)."""
        if transition is not None:
            self.reporter.breaker(
                transition,
                target=target,
                detail=budgeting.describe_transition(transition, settings=self.settings),
            )

    async def _guarded(
        self, plan: decisions.Plan, guard_snapshot: cluster_state.TargetSnapshot
    ) -> decisions.Decision:
        # The state this process last saw is good enough to go on: `reserve` re-checks pause, breaker and
        # budget on the freshest state under compare-and-swap before the write. Not in dry-run or a preview
        # (nothing is reserved there), and not to refuse: a refusal is decided again on a fresh read.
        cluster = None if self.dry_run else self.state_store.last_known()
        if cluster is not None:
            decision = self.guard(
                plan=plan, snapshot=guard_snapshot, cluster=cluster, settings=self.settings, now=self.clock()
            )
            if decision.allowed:
                return decision
        return self.guard(
            plan=plan,
            snapshot=guard_snapshot,
            cluster=await self.state_store.read(),
            settings=self.settings,
            now=self.clock(),
        )

    async def act(
        self,
        run: reporting.Run,
        *,
        snapshot: mutations.WorkloadSnapshot,
        mutation: mutations.Mutation[mutations.Change],
        guard_snapshot: cluster_state.TargetSnapshot,
        options: object,
        count: targets.Target | None = None,
    ) -> Acted:
        """Guard, pre-check, reserve, write and report one mutation. Raises `Replan` after a 409.

        `count`: the workload still to be counted in the blast radius; it is counted with the reservation,
        in the same state write (in dry-run, on its own, and the guard asked again on the state it left)."""
        plan = mutation.plan
        action = plan.action
        part = parts.mutating(action)
        decision = await self._guarded(plan, guard_snapshot)
        if not decision.allowed:
            await self.reporter.blocked_with_event(run, action, decision, plan=plan)
            return Acted(decision)
        if part.precheck is not None:
            refusal = await part.precheck(self.kube, snapshot=snapshot, mutation=mutation)
            if refusal is not None:
                await self.reporter.refused(run, action, decisions.Outcome.FAILED, refusal, plan=plan)
                return Acted(refusal)
        if self.preview:
            return Acted(decision)
        reserved = False
        counted = count is not None
        if not self.dry_run:
            if count is not None:
                budget, transition = await self.state_store.count_and_reserve(count, now=self.clock())
                self.told(transition, target=count)
            else:
                budget = await self.state_store.reserve(now=self.clock())
            if not budget.allowed:
                await self.reporter.blocked_with_event(run, action, budget, plan=plan)
                return Acted(budget, counted=counted)
            reserved = True
        elif count is not None:
            cluster = await self.count(count)
            if cluster is not None:
                # Counted first in enforce mode too: the workload that opens the breaker is refused by it.
                again = self.guard(
                    plan=plan,
                    snapshot=guard_snapshot,
                    cluster=cluster,
                    settings=self.settings,
                    now=self.clock(),
                )
                if not again.allowed:
                    await self.reporter.blocked_with_event(run, action, again, plan=plan)
                    return Acted(again, counted=True)
        follow_ups = None if self.dry_run else self.follow_ups
        if follow_ups is not None:
            # Written ahead (unconfirmed): a replica killed right after the write leaves its verdicts, its
            # restart schedule and its rollout to the others, who confirm it from the workload's ledger.
            await follow_ups.before_write(run, snapshot=snapshot, mutation=mutation)
        try:
            try:
                written = await part.carry_out(
                    self.kube, snapshot=snapshot, mutation=mutation, dry_run=self.dry_run
                )
            finally:
                self.wrote(snapshot.target.key)
        except errors.KubeConflict as e:
            if reserved:
                await self.state_store.return_budget(now=self.clock())
            if follow_ups is not None:
                await follow_ups.write_failed(mutation, maybe_written=False)
            logger.info("409 on %s: re-reading and re-planning", snapshot.target.key)
            raise Replan(snapshot.target.key, counted=counted) from e
        except errors.KubeError as e:
            # A 5xx may have been applied: its token stays spent rather than risk a second write on it.
            if reserved and not isinstance(e, errors.KubeUnavailable):
                await self.state_store.return_budget(now=self.clock())
            if follow_ups is not None:
                await follow_ups.write_failed(mutation, maybe_written=isinstance(e, errors.KubeUnavailable))
            refusal = decisions.Decision.refuse(errors.reason_for(e), e.message)
            await self.reporter.refused(run, action, decisions.Outcome.FAILED, refusal, plan=plan)
            return Acted(refusal, counted=counted)
        summary = planning.describe(plan)
        follows = actions.traits_of(action).follows_rollout and self.verifier is not None
        if follow_ups is not None:
            await follow_ups.after_mitigation(
                run,
                mutation=mutation,
                written=written,
                options=options,
                summary=summary,
                follows_rollout=follows,
            )
        extra = ""
        if part.after_write is not None:
            extra = await part.after_write(
                self.kube, snapshot=snapshot, mutation=mutation, options=options, dry_run=self.dry_run
            )
        outcome = decisions.Outcome.WOULD_DO if self.dry_run else decisions.Outcome.DONE
        # The plan's note (a GitOps controller will revert this: what to commit) comes first.
        extra = " ".join(line for line in (plan.note, extra) if line)
        allowed = decisions.Decision.allow(extra)
        self.reporter.report(run, action, outcome, allowed, plan=plan, summary=summary)
        await self.reporter.record_event(
            run, action, outcome, decisions.Reason.ALLOWED, f"{summary}. {extra}".strip(), plan=plan
        )
        if not self.dry_run:
            silence_id = await self._silence(run, snapshot=snapshot, mutation=mutation, outcome=outcome)
            if silence_id is not None:
                # The verifier expires it if the rollout fails.
                mutation = dataclasses.replace(
                    mutation, entry=mutation.entry.model_copy(update={"silence": silence_id})
                )
        if not self.dry_run and self.verifier is not None and follows:
            self.verifier.verify_later(run, mutation=mutation, written=written, options=options)
        return Acted(allowed, summary, counted=counted)

    async def _silence(
        self,
        run: reporting.Run,
        *,
        snapshot: mutations.WorkloadSnapshot,
        mutation: mutations.Mutation[mutations.Change],
        outcome: decisions.Outcome,
    ) -> str | None:
        """The Alertmanager silence the mitigation earns: created after the write (so it never delays it),
        its id kept in the ledger entry (a failed verdict or a revert expires it) and told in the thread."""
        playbook = run.item.playbook
        if self.quieter is None or self.quieter.client is None or playbook is None:
            return None
        quieted = await self.quieter.silence_after(
            event=run.event,
            target=snapshot.target,
            playbook=playbook,
            action=mutation.plan.action,
            outcome=outcome,
            now=self.clock(),
        )
        if quieted.silence_id is not None:
            silence_id = quieted.silence_id
            recorded = await patching.update_ledger(
                self.kube,
                snapshot.target,
                lambda entries: ledgers.with_silence(entries, mutation.entry, silence_id),
                attempts=patching.LEDGER_WRITE_ATTEMPTS,
            )
            if not recorded:
                logger.warning("silence %s not recorded in the ledger of %s", silence_id, snapshot.target.key)
        self.reporter.silenced(run, mutation.plan.action, line=quieted.line, silence_id=quieted.silence_id)
        return quieted.silence_id

    async def act_additional(
        self,
        run: reporting.Run,
        *,
        snapshot: mutations.WorkloadSnapshot,
        specs: tuple[actions.ActionSpec, ...],
        guard_snapshot: cluster_state.TargetSnapshot,
        done: str | None,
    ) -> tuple[actions.Action, ...]:
        """Carry out the non-mutating actions in order (each guarded: scope policy applies to them too);
        the actions the guard allowed."""
        allowed: list[actions.Action] = []
        diagnostics = run.diagnostics
        for spec in specs:
            plan = decisions.Plan(
                playbook=run.playbook,
                action=spec.action,
                target=snapshot.target,
                occurrence_id=run.event.occurrence_id,
                pod=run.event.pod,
            )
            decision = await self._guarded(plan, guard_snapshot)
            if not decision.allowed:
                self.reporter.blocked(run, spec.action, decision, plan=plan)
                continue
            allowed.append(spec.action)
            given = base.AdditionalInput(
                target=snapshot.target,
                namespace=run.event.namespace or snapshot.target.namespace,
                pod_name=run.event.pod,
                pod=snapshot.pod,
                done=done,
                snapshot=snapshot,
                incident=run.event.occurrence_id,
                playbook=run.playbook,
                thread=run.thread,
                container=run.event.container,
                dry_run=self.dry_run,
                follow_ups=None if self.dry_run else self.follow_ups,
                diagnostics=diagnostics,
                workload=snapshot.workload,
                config=self.settings,
                now=self.clock(),
                identity=self.identity,
            )
            result = await parts.additional(spec.action).carry_out(
                self.kube, given=given, options=spec.options
            )
            diagnostics = result.diagnostics or diagnostics
            run.diagnostics = diagnostics
            self.reporter.report(
                run,
                spec.action,
                result.outcome,
                decisions.Decision.allow(result.detail),
                plan=plan,
                kind=result.kind,
                summary=result.summary,
                log_lines=result.log_lines,
            )
            if result.event:
                await self.reporter.record_event(
                    run,
                    spec.action,
                    result.outcome,
                    decisions.Reason.ALLOWED,
                    result.event_note or result.detail,
                )
        return tuple(allowed)
