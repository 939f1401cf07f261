"""The pipeline handler: one alert from the queue through locate → lock → check → plan → act, re-planning on 409.

Stage: engine. `Processor.handle` is the `KeyedQueue` handler. It locates the alert's top-level workload,
serializes work on it, reads a snapshot, and runs the conflict loop: check the alert is still true
(`responder.logic.resolving`), plan (`responder.logic.planning`), act (`responder.engine.acting`: guard,
precheck, reserve, write), and start again from a fresh read when the write lost a resourceVersion race.
Rollouts are followed by `responder.engine.verifying`, every outcome is reported once by
`responder.engine.reporting`. `preview` runs the same path with a muted reporter and no write. This module
never catches `ApiException` (only `responder.kube.errors`) and never swallows `CancelledError`.

Exactly once: work on one target is serialized in-process by a lock on the resolved top-level workload, and
across replicas by the resourceVersion precondition of the single write that carries the change and its
ledger entry (409 → re-read, re-check, re-plan: the loser then finds the occurrence in the ledger).

Requests per alert: nothing is read twice, and the copies of one alert (HA peers, repeats, re-fires of the same
kill) share the read of their pod when they were received before it (`responder.kube.pod_readings`). The workload read while locating a gone pod's owner is the
snapshot's, unless this process wrote it since; the guard's first look at the cluster-wide state is the state
this process last read or wrote (an allowing answer is re-checked by `reserve` under compare-and-swap, a
refusing one on a fresh read); an API found not served (the VPA's) is not asked again for a few minutes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import datetime
import functools
import logging
import os
import socket
from collections.abc import AsyncIterator, Callable

from responder import metrics as metrics_mod
from responder.engine import (
    acting,
    following,
    investigating,
    measuring,
    quieting,
    recent_writes,
    reporting,
    verifying,
)
from responder.kube import client, errors, fetching, follow_ups, pod_readings
from responder.kube import state as state_mod
from responder.logic import guarding, planning, resolving
from responder.models import (
    actions,
    alerts,
    analyses,
    cluster_state,
    decisions,
    mutations,
    notices,
    settings,
    targets,
    work,
)

__all__ = ["Guard", "Notifier", "Preview", "Processor", "StateStore", "default_identity"]

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime.datetime]
Guard = acting.Guard
Notifier = reporting.Notifier
StateStore = acting.StateStore


def default_identity(config: settings.Settings) -> str:
    """`identity` from the settings, else $POD_NAME, else the host name."""
    return config.identity or os.environ.get("POD_NAME") or socket.gethostname()


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclasses.dataclass(frozen=True, slots=True)
class Preview:
    """What `Processor.preview` found: the plan, if any, and the decision it would get."""

    decision: decisions.Decision
    target: targets.Target | None = None
    plan: decisions.Plan | None = None
    skipped: tuple[tuple[settings.Action, decisions.Decision], ...] = ()
    extras: tuple[settings.Action, ...] = ()
    analysis: analyses.Analysis | None = None
    """The workload's memory history, when Prometheus is configured."""
    playbook: str | None = None
    """The playbook that answers, after the analysis re-routed the alert (None when it did not change)."""


def _options(playbook: settings.Playbook, action: settings.Action) -> settings.ActionSpec | None:
    return next((spec for spec in playbook.actions if spec.action is action), None)


class Processor:
    """The queue's handler. One per process; `close()` at shutdown."""

    def __init__(
        self,
        *,
        settings: settings.Settings,
        metrics: metrics_mod.Metrics,
        kube: client.Kube,
        notifiers: Notifier,
        state_store: StateStore,
        clock: Clock = _utcnow,
        guard: Guard = guarding.guard,
        identity: str | None = None,
        own_namespace: str | None = None,
        retry_on_next_delivery: Callable[[work.WorkItem], None] | None = None,
        memory: measuring.MemoryReader | None = None,
        investigator: investigating.Investigator | None = None,
        quieter: quieting.Quieter | None = None,
    ) -> None:
        """`retry_on_next_delivery(item)` is called when an alert met a passing obstacle (see
        `reporting.Run.passing`), so the receiver forgets it was seen and Alertmanager's next delivery of it (a
        group re-send, a repeat, another replica's) is processed again instead of dropped as a duplicate."""
        self.settings = settings
        self.metrics = metrics
        self.kube = kube
        self.state_store = state_store
        self.clock = clock
        self.identity = identity or default_identity(settings)
        self.own_namespace = own_namespace or state_mod.own_namespace(settings)
        self._retry_on_next_delivery = retry_on_next_delivery
        self.investigator = investigator
        """Reads the workload's memory history (`prometheus:`); None: no analysis, as without Prometheus."""
        self._locks: dict[str, asyncio.Lock] = {}
        self._lock_users: collections.Counter[str] = collections.Counter()
        self._unserved = fetching.Unserved()
        self._writes = recent_writes.RecentWrites()
        self._pods = pod_readings.PodReadings(clock=clock)
        self.reporter = reporting.Reporter(
            metrics=metrics,
            notifiers=notifiers,
            kube=kube,
            clock=clock,
            identity=self.identity,
            dry_run=self.dry_run,
            may_write_in=self._may_write_in,
            repeat_window_seconds=settings.notifiers.repeat_window_seconds,
        )
        # Alertmanager silences after mitigations (a no-op without alertmanager.url).
        self.quieter = quieter if quieter is not None else quieting.Quieter.from_settings(settings)
        # What happens after a mitigation (verdicts, restart schedules, the rollout being verified) is kept in
        # Kubernetes by `following`; `serve` starts its poller, which also finishes what a dead replica left.
        self.following = following.Following(
            settings=settings,
            metrics=metrics,
            kube=kube,
            store=follow_ups.FollowUpStore(
                kube, namespace=settings.follow_up.namespace or self.own_namespace
            ),
            state_store=state_store,
            notifiers=notifiers,
            identity=self.identity,
            own_namespace=self.own_namespace,
            clock=clock,
            guard=guard,
            memory=memory,
            quieter=self.quieter,
        )
        self.verifier = verifying.Verifier(
            settings=settings.verification,
            kube=kube,
            reporter=self.reporter,
            wrote=self._writes.wrote,
            holder=self.following,
            quieter=self.quieter,
        )
        self.actor = self._actor(
            guard, reporter=self.reporter, verifier=self.verifier, preview=False, follow_ups=self.following
        )
        self._previewer = self._actor(guard, reporter=self.reporter.muted_copy(), verifier=None, preview=True)

    def _actor(
        self,
        guard: Guard,
        *,
        reporter: reporting.Reporter,
        verifier: verifying.Verifier | None,
        preview: bool,
        follow_ups: acting.FollowUps | None = None,
    ) -> acting.Actor:
        return acting.Actor(
            settings=self.settings,
            kube=self.kube,
            state_store=self.state_store,
            reporter=reporter,
            verifier=verifier,
            clock=self.clock,
            guard=guard,
            wrote=self._writes.wrote,
            preview=preview,
            follow_ups=follow_ups,
            quieter=None if preview else self.quieter,
        )

    def _may_write_in(self, namespace: str) -> bool:
        return guarding.is_namespace_allowed(
            namespace, own_namespace=self.own_namespace, settings=self.settings
        )

    @property
    def dry_run(self) -> bool:
        return self.settings.mode is settings.Mode.DRY_RUN

    # ---- lifecycle ---------------------------------------------------------------------------------------

    async def wait_verifications(self) -> None:
        """Wait for every rollout being followed (tests; shutdown via `close`)."""
        await self.verifier.wait()

    async def close(self, timeout_seconds: float) -> None:
        """Let running verifications and follow-ups finish within `timeout_seconds`, then cancel them (a
        cancelled one's claim lapses and another replica finishes it)."""
        await self.verifier.close(timeout_seconds)
        await self.following.close(timeout_seconds)
        if self.investigator is not None:
            await self.investigator.close()
        await self.quieter.close()

    @contextlib.asynccontextmanager
    async def _locked(self, key: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._lock_users[key] += 1
        try:
            async with lock:
                yield
        finally:
            self._lock_users[key] -= 1
            if self._lock_users[key] <= 0:
                del self._lock_users[key]
                self._locks.pop(key, None)

    # ---- the handler ---------------------------------------------------------------------------------------

    async def handle(self, item: work.WorkItem) -> None:
        run = reporting.Run(item=item)
        try:
            if item.event.status is alerts.AlertStatus.RESOLVED or item.playbook is None:
                await self._resolved(run)
                return
            seen = self._writes.seq
            async with self._investigating_early(item) as early:
                located = await fetching.locate(
                    self.kube,
                    event=item.event,
                    names=self.settings.alerts,
                    read_pod=functools.partial(self._pods.read, self.kube, received_at=item.received_at),
                )
                if located.target is None:
                    refusal = located.refusal or decisions.Decision.refuse(
                        decisions.Reason.TARGET_NOT_FOUND, ""
                    )
                    self.reporter.report(run, run.first_action, decisions.Outcome.SKIPPED, refusal)
                    return
                run.target = located.target
                await self._investigate(run, early=early)
            async with self._locked(located.target.key):
                # Read before the lock: still current unless a task of this process wrote it meanwhile
                # (another replica's write is caught by the write's resourceVersion precondition).
                workload = located.workload
                if workload is not None and not self._writes.unwritten_since(located.target.key, seen):
                    workload = None
                await self._process(run, located.pod, workload)
        except errors.KubeError as e:
            refusal = decisions.Decision.refuse(errors.reason_for(e), e.message)
            await self.reporter.refused(run, run.first_action, decisions.Outcome.FAILED, refusal)
        if run.passing and self._retry_on_next_delivery is not None:
            self._retry_on_next_delivery(item)

    async def preview(self, item: work.WorkItem) -> Preview:
        """What `handle` would decide for `item` right now, from live state, without writing anything.

        The same reads, checks, planning and acting path as `handle` (guard, and a pre-check such as the
        raise's server-side dry-run admission), stopped before budget is taken or anything written, with a
        muted reporter (no Event, no notice, no metric): `oom-responder plan` shows an operator exactly which
        guardrail would block, before an incident.
        """
        run = reporting.Run(item=item)
        if item.event.status is alerts.AlertStatus.RESOLVED or item.playbook is None:
            return Preview(
                decision=decisions.Decision.refuse(decisions.Reason.RESOLVED, "notifications only")
            )
        located = await fetching.locate(self.kube, event=item.event, names=self.settings.alerts)
        if located.target is None:
            return Preview(
                decision=located.refusal or decisions.Decision.refuse(decisions.Reason.TARGET_NOT_FOUND, "")
            )
        run.target = located.target
        await self._investigate(run)
        rerouted = run.playbook if run.item is not item else None
        snapshot = await self._snapshot(run, located.target, located.pod, located.workload)
        if snapshot is None:
            return Preview(
                analysis=run.analysis,
                playbook=rerouted,
                target=located.target,
                decision=decisions.Decision.refuse(decisions.Reason.TARGET_NOT_FOUND, "workload is gone"),
            )
        still = resolving.check_still_true(event=item.event, pod=located.pod, entries=snapshot.ledger)
        if not still.allowed:
            return Preview(target=located.target, decision=still, analysis=run.analysis, playbook=rerouted)
        proposal = self._propose(run, snapshot)
        extras = tuple(spec.action for spec in proposal.extras)
        found = Preview(
            target=located.target,
            skipped=proposal.skipped,
            extras=extras,
            decision=still,
            analysis=run.analysis,
            playbook=rerouted,
        )
        if proposal.mutation is None:
            fallback = decisions.Decision.refuse(decisions.Reason.NOT_SCALABLE, "no action applies")
            return dataclasses.replace(
                found, decision=proposal.skipped[-1][1] if proposal.skipped else fallback
            )
        acted = await self._previewer.act(
            run,
            snapshot=snapshot,
            mutation=proposal.mutation,
            guard_snapshot=self._guard_snapshot(snapshot),
            options=self._options_of(run, proposal.mutation.plan.action),
        )
        return dataclasses.replace(found, plan=proposal.mutation.plan, decision=acted.decision)

    def _investigating_early(
        self, item: work.WorkItem
    ) -> contextlib.AbstractAsyncContextManager[investigating.Early | None]:
        if self.investigator is None:
            return contextlib.nullcontext(None)
        return self.investigator.early(event=item.event, names=self.settings.alerts, now=self.clock())

    async def _investigate(self, run: reporting.Run, *, early: investigating.Early | None = None) -> None:
        """Investigation stage (`responder.engine.investigating`): the pattern, and the playbook it routes to."""
        if self.investigator is not None:
            await self.investigator.investigate_run(
                run, playbooks=self.settings.playbooks, now=self.clock(), early=early
            )

    async def _resolved(self, run: reporting.Run) -> None:
        thread: str | None = None
        target: targets.Target | None = None
        if run.event.namespace:
            with contextlib.suppress(errors.KubeError):
                found = await fetching.find_recorded(
                    self.kube,
                    namespace=run.event.namespace,
                    pod=run.event.pod,
                    occurrence=run.event.occurrence_id,
                )
                if found is not None:
                    target, entries = found
                    thread = resolving.thread_of(entries, run.event.occurrence_id)
        self.reporter.resolved(run, target=target, thread=thread)

    @staticmethod
    def _options_of(run: reporting.Run, action: settings.Action) -> object:
        assert run.item.playbook is not None
        spec = _options(run.item.playbook, action)
        return spec.options if spec is not None else None

    async def _snapshot(
        self,
        run: reporting.Run,
        target: targets.Target,
        pod: client.Body | None,
        workload: client.Body | None = None,
    ) -> mutations.WorkloadSnapshot | None:
        """Everything the plan is made from; `workload` when it was just read (else it is read here)."""
        assert run.item.playbook is not None
        snapshot = await fetching.read_snapshot(
            self.kube,
            target=target,
            pod=pod,
            workload=workload,
            playbook=run.item.playbook,
            unserved=self._unserved,
        )
        if snapshot is not None:
            if run.analysis is not None:
                snapshot = dataclasses.replace(snapshot, analysis=run.analysis)
            run.workload_uid = (snapshot.workload.get("metadata") or {}).get("uid")
            run.thread = resolving.thread_of(snapshot.ledger, run.event.occurrence_id) or run.thread
        return snapshot

    def _guard_snapshot(self, snapshot: mutations.WorkloadSnapshot) -> cluster_state.TargetSnapshot:
        return cluster_state.TargetSnapshot.from_annotations(
            namespace=snapshot.target.namespace,
            annotations=snapshot.annotations,
            own_namespace=self.own_namespace,
        )

    def _propose(self, run: reporting.Run, snapshot: mutations.WorkloadSnapshot) -> mutations.Proposal:
        assert run.item.playbook is not None
        return planning.propose(
            snapshot=snapshot,
            event=run.event,
            playbook=run.item.playbook,
            config=self.settings,
            now=self.clock(),
            identity=self.identity,
            thread=run.thread,
        )

    async def _process(
        self, run: reporting.Run, pod: client.Body | None, workload: client.Body | None
    ) -> None:
        """The conflict loop: read, check, plan and act until a write wins or nothing is to be written."""
        target = run.target
        assert target is not None
        counted = False
        collected = False
        for attempt in range(self.settings.kubernetes.conflict_attempts):
            if attempt:
                workload = None  # someone wrote it since: read it again
                if run.event.pod and run.event.namespace:
                    # Someone wrote the workload since we read it: the pod may have changed too.
                    pod = await self._pods.refresh(
                        self.kube, fetching.pod_path(run.event.namespace, run.event.pod)
                    )
            snapshot = await self._snapshot(run, target, pod, workload)
            if snapshot is None:
                gone = decisions.Decision.refuse(
                    decisions.Reason.TARGET_NOT_FOUND, f"{target.key} no longer exists"
                )
                self.reporter.report(run, run.first_action, decisions.Outcome.SKIPPED, gone)
                return
            still = resolving.check_still_true(event=run.event, pod=pod, entries=snapshot.ledger)
            if not still.allowed:
                kind = notices.NoticeKind.REPEAT if still.reason is decisions.Reason.ALREADY_HANDLED else None
                self.reporter.report(run, run.first_action, decisions.Outcome.SKIPPED, still, kind=kind)
                return
            guard_snapshot = self._guard_snapshot(snapshot)
            # An alerting workload in scope counts in the blast radius once: with its reservation when a
            # mitigation gets that far (one state write for both), else on its own before the run ends.
            count = (
                target
                if not counted
                and guarding.check_scope(snapshot=guard_snapshot, settings=self.settings) is None
                else None
            )
            proposal = self._propose(run, snapshot)
            for action, refusal in proposal.skipped:
                if refusal.reason is decisions.Reason.AT_CEILING:
                    # Already at its ceiling: the guardrail that stops the action, and a human is paged.
                    ceiling = decisions.Decision.block(decisions.Guardrail.CEILING, refusal.detail)
                    await self.reporter.blocked_with_event(run, action, ceiling)
                else:
                    await self.reporter.refused(run, action, decisions.Outcome.SKIPPED, refusal)
            before = tuple(s for s in proposal.extras if actions.traits_of(s.action).before_mitigation)
            after = tuple(s for s in proposal.extras if not actions.traits_of(s.action).before_mitigation)
            if before and not collected:
                # Runbook Steps 4-5: the evidence (the alerted pod's previous log, its heap) is gone once the
                # mitigation's rollout or eviction replaces the pod. Once per run, not per re-plan.
                collected = True
                await self.actor.act_additional(
                    run, snapshot=snapshot, specs=before, guard_snapshot=guard_snapshot, done=None
                )
            done: str | None = None
            if proposal.mutation is not None:
                try:
                    acted = await self.actor.act(
                        run,
                        snapshot=snapshot,
                        mutation=proposal.mutation,
                        guard_snapshot=guard_snapshot,
                        options=self._options_of(run, proposal.mutation.plan.action),
                        count=count,
                    )
                except acting.Replan as replan:
                    counted = counted or replan.counted
                    continue  # 409: someone wrote first; re-read, re-check and re-plan
                done = acted.summary
                counted = counted or acted.counted
            if count is not None and not counted:
                await self.actor.count(count)
            await self.actor.act_additional(
                run, snapshot=snapshot, specs=after, guard_snapshot=guard_snapshot, done=done
            )
            return
        conflict = decisions.Decision.refuse(
            decisions.Reason.CONFLICT,
            f"the workload kept changing: {self.settings.kubernetes.conflict_attempts} attempts lost to 409",
        )
        self.reporter.report(run, run.first_action, decisions.Outcome.FAILED, conflict)
