"""The pipeline handler: one alert from the queue through resolve → check → plan → guard → act → verify → notify.

Stage: engine. `Processor.handle` is the `KeyedQueue` handler. All decisions are made by pure functions
(`responder.logic.resolving`, `planning`, `guarding`) over a snapshot read just before; this module only
reads, calls them, writes what they planned, and reports every outcome exactly once: a metric, a Kubernetes
Event on the workload, and a notice. It never catches `ApiException` (only `responder.kube.errors`) and never
swallows `CancelledError`.

Exactly once: work on one target is serialized in-process by a lock on the resolved top-level workload, and
across replicas by the resourceVersion precondition of the single write that carries the change and its
ledger entry (409 → re-read, re-check, re-plan: the loser then finds the occurrence in the ledger).
Verification of a rollout runs in a background task that does not hold the target's lock; `close()` waits
for those tasks, then cancels what is left.

Requests per alert: nothing is read twice. The workload read while locating a gone pod's owner is the
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
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from responder import metrics as metrics_mod
from responder.engine import verifying
from responder.engine.actions import (
    capture_diagnostics,
    escalate,
    evict_pod,
    raise_memory,
    rollout_restart,
    scale_out,
)
from responder.kube import client, errors, events, fetching, patching
from responder.kube import state as state_mod
from responder.logic import guarding, planning, resolving
from responder.models import alerts, cluster_state, decisions, ledgers, notices, settings, targets, work

__all__ = ["Guard", "Notifier", "Preview", "Processor", "StateStore", "default_identity"]

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime.datetime]


class Notifier(Protocol):
    """Anything that takes notices without blocking (`responder.engine.notifying.Notifiers`)."""

    def notify(self, notice: notices.Notice) -> None: ...


class StateStore(Protocol):
    """The cluster-wide guardrail state (`responder.kube.state.StateStore`)."""

    async def read(self) -> cluster_state.ClusterState: ...

    def last_known(self) -> cluster_state.ClusterState | None: ...

    async def note_alerting(
        self, target: targets.Target, *, now: datetime.datetime
    ) -> tuple[cluster_state.ClusterState, cluster_state.BreakerTransition | None]: ...

    async def reserve(self, *, now: datetime.datetime) -> decisions.Decision: ...

    async def return_budget(self, *, now: datetime.datetime) -> None: ...


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


def default_identity(config: settings.Settings) -> str:
    """`identity` from the settings, else $POD_NAME, else the host name."""
    return config.identity or os.environ.get("POD_NAME") or socket.gethostname()


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


_REPLAN = "\x00replan"
"""Sentinel from `_act`: the write lost a resourceVersion race."""

_RECENT_WRITES = 4096
"""Workloads whose last write by this process is remembered (to know whether a read taken before the target's
lock is still current); older ones are forgotten together, which only costs a re-read."""

# Outcomes that a later delivery of the same alert may turn into an action: the API server was in trouble,
# a PodDisruptionBudget refused an eviction for now, the workload kept changing, or a cluster-wide guardrail
# that lifts by itself (budget refill, breaker quiet period) or by `resume` blocked it. Cooldown, cap and
# ceiling blocks are not passing: repeating the alert does not change them.
_PASSING_REASONS = frozenset(
    {decisions.Reason.API_ERROR, decisions.Reason.PDB_BLOCKED, decisions.Reason.CONFLICT}
)
_PASSING_GUARDRAILS = frozenset(
    {decisions.Guardrail.BUDGET, decisions.Guardrail.BLAST_RADIUS, decisions.Guardrail.PAUSED}
)

_WARNING_OUTCOMES = frozenset(
    {decisions.Outcome.FAILED, decisions.Outcome.BLOCKED, decisions.Outcome.ESCALATED}
)


@dataclasses.dataclass
class _Run:
    """What one alert's processing has learned so far (for reports)."""

    item: work.WorkItem
    started: float
    target: targets.Target | None = None
    workload_uid: str | None = None
    thread: str | None = None
    passing: bool = False
    """An outcome that may change soon (API trouble, a PDB, budget, breaker, pause): take the next delivery."""

    @property
    def event(self) -> alerts.AlertEvent:
        return self.item.event

    @property
    def playbook(self) -> str:
        return self.item.playbook.name if self.item.playbook else ""


def _first_action(playbook: settings.Playbook | None) -> settings.Action:
    if playbook is None or not playbook.actions:
        return settings.Action.ESCALATE
    return playbook.actions[0].action


def _options(playbook: settings.Playbook, action: settings.Action) -> object | None:
    for spec in playbook.actions:
        if spec.action is action:
            return spec.options
    return None


def _reason_for(error: errors.KubeError) -> decisions.Reason:
    if isinstance(error, errors.KubePdbBlocked):
        return decisions.Reason.PDB_BLOCKED
    if isinstance(error, errors.KubeForbidden):
        # ResourceQuota refusals are 403 "exceeded quota"; RBAC refusals are 403 too.
        return (
            decisions.Reason.QUOTA_REFUSED if "quota" in error.message.lower() else decisions.Reason.FORBIDDEN
        )
    if isinstance(error, errors.KubeInvalid):
        return decisions.Reason.INVALID
    if isinstance(error, errors.KubeConflict):
        return decisions.Reason.CONFLICT
    if isinstance(error, errors.KubeNotFound):
        return decisions.Reason.TARGET_NOT_FOUND
    return decisions.Reason.API_ERROR


@dataclasses.dataclass(frozen=True, slots=True)
class Preview:
    """What `Processor.preview` found: the plan, if any, and the decision it would get."""

    decision: decisions.Decision
    target: targets.Target | None = None
    plan: decisions.Plan | None = None
    skipped: tuple[tuple[settings.Action, decisions.Decision], ...] = ()
    extras: tuple[settings.Action, ...] = ()


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
    ) -> None:
        """`retry_on_next_delivery(item)` is called when an alert met a passing obstacle (see
        `_PASSING_REASONS`), so the receiver forgets it was seen and Alertmanager's next delivery of it (a
        group re-send, a repeat, another replica's) is processed again instead of dropped as a duplicate."""
        self.settings = settings
        self.metrics = metrics
        self.kube = kube
        self.notifiers = notifiers
        self.state_store = state_store
        self.clock = clock
        self.guard = guard
        self.identity = identity or default_identity(settings)
        self.own_namespace = own_namespace or state_mod.own_namespace(settings)
        self._retry_on_next_delivery = retry_on_next_delivery
        self._locks: dict[str, asyncio.Lock] = {}
        self._lock_users: collections.Counter[str] = collections.Counter()
        self._verifications: set[asyncio.Task[None]] = set()
        self._unserved = fetching.Unserved()
        self._write_seq = 0
        self._recent_writes: collections.OrderedDict[str, int] = collections.OrderedDict()
        self._forgotten_seq = 0

    @property
    def dry_run(self) -> bool:
        return self.settings.mode is settings.Mode.DRY_RUN

    # ---- lifecycle ---------------------------------------------------------------------------------------

    async def wait_verifications(self) -> None:
        """Wait for every rollout being followed (tests; shutdown via `close`)."""
        while self._verifications:
            await asyncio.gather(*list(self._verifications), return_exceptions=True)

    async def close(self, timeout_seconds: float) -> None:
        """Let running verifications finish within `timeout_seconds`, then cancel them."""
        if not self._verifications:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wait_verifications(), timeout=timeout_seconds)
        for task in list(self._verifications):
            task.cancel()
        await asyncio.gather(*list(self._verifications), return_exceptions=True)

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

    def _wrote(self, key: str) -> None:
        """This process finished a write (or an attempt) on workload `key`."""
        self._write_seq += 1
        self._recent_writes[key] = self._write_seq
        self._recent_writes.move_to_end(key)
        while len(self._recent_writes) > _RECENT_WRITES:
            _, seq = self._recent_writes.popitem(last=False)
            self._forgotten_seq = max(self._forgotten_seq, seq)

    def _unwritten_since(self, key: str, seq: int) -> bool:
        """No write by this process on `key` finished after the write counter read `seq`."""
        return self._forgotten_seq <= seq and self._recent_writes.get(key, 0) <= seq

    # ---- the handler ---------------------------------------------------------------------------------------

    async def handle(self, item: work.WorkItem) -> None:
        run = _Run(item=item, started=time.monotonic())
        try:
            if item.event.status is alerts.AlertStatus.RESOLVED or item.playbook is None:
                await self._resolved(run)
                return
            seen = self._write_seq
            located = await fetching.locate(self.kube, event=item.event, names=self.settings.alerts)
            if located.target is None:
                refusal = located.refusal or decisions.Decision.refuse(decisions.Reason.TARGET_NOT_FOUND, "")
                self._report(run, _first_action(item.playbook), decisions.Outcome.SKIPPED, refusal)
                return
            run.target = located.target
            async with self._locked(located.target.key):
                # Read before the lock: still current unless a task of this process wrote it meanwhile
                # (another replica's write is caught by the write's resourceVersion precondition).
                workload = located.workload
                if workload is not None and not self._unwritten_since(located.target.key, seen):
                    workload = None
                await self._process(run, located.pod, workload)
        except errors.KubeError as e:
            action = _first_action(item.playbook)
            self._report(
                run, action, decisions.Outcome.FAILED, decisions.Decision.refuse(_reason_for(e), e.message)
            )
            await self._event(run, action, decisions.Outcome.FAILED, _reason_for(e), e.message)
        if run.passing and self._retry_on_next_delivery is not None:
            self._retry_on_next_delivery(item)

    async def preview(self, item: work.WorkItem) -> Preview:
        """What `handle` would decide for `item` right now, from live state, without writing anything.

        The same reads, checks, planning and guard as `handle` (and the raise's server-side dry-run
        admission check), but no write, no budget taken, no blast-radius count, no Event and no notice:
        `oom-responder plan` shows an operator exactly which guardrail would block, before an incident.
        """
        run = _Run(item=item, started=time.monotonic())
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
        snapshot = await self._snapshot(run, located.target, located.pod, located.workload)
        if snapshot is None:
            return Preview(
                target=located.target,
                decision=decisions.Decision.refuse(decisions.Reason.TARGET_NOT_FOUND, "workload is gone"),
            )
        still = resolving.check_still_true(event=item.event, pod=located.pod, entries=snapshot.ledger)
        if not still.allowed:
            return Preview(target=located.target, decision=still)
        proposal = planning.propose(
            snapshot=snapshot,
            event=item.event,
            playbook=item.playbook,
            config=self.settings,
            now=self.clock(),
            identity=self.identity,
            thread=run.thread,
        )
        extras = tuple(spec.action for spec in proposal.extras)
        if proposal.mutation is None:
            return Preview(
                target=located.target,
                skipped=proposal.skipped,
                extras=extras,
                decision=proposal.skipped[-1][1]
                if proposal.skipped
                else decisions.Decision.refuse(decisions.Reason.NOT_SCALABLE, "no action applies"),
            )
        plan = proposal.mutation.plan
        decision = self.guard(
            plan=plan,
            snapshot=self._guard_snapshot(snapshot),
            cluster=await self.state_store.read(),
            settings=self.settings,
            now=self.clock(),
        )
        if decision.allowed and proposal.mutation.memory is not None:
            refusal = await raise_memory.precheck(
                self.kube, snapshot=snapshot, change=proposal.mutation.memory
            )
            decision = refusal or decision
        return Preview(
            target=located.target, plan=plan, decision=decision, skipped=proposal.skipped, extras=extras
        )

    async def _resolved(self, run: _Run) -> None:
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
        self.notifiers.notify(
            notices.Notice(
                kind=notices.NoticeKind.RESOLVED,
                at=self.clock(),
                incident=run.event.occurrence_id,
                summary=f"{run.event.alertname} resolved for {run.event.namespace}/{run.event.pod}",
                event=run.event,
                target=target,
                playbook=run.playbook or None,
                reason=decisions.Reason.RESOLVED,
                dry_run=self.dry_run,
                thread=thread,
            )
        )

    async def _snapshot(
        self,
        run: _Run,
        target: targets.Target,
        pod: client.Body | None,
        workload: client.Body | None = None,
    ) -> planning.WorkloadSnapshot | None:
        """Everything the plan is made from; `workload` when it was just read (else it is read here)."""
        if workload is None:
            workload = await fetching.read_optional(self.kube, fetching.workload_path(target))
        if workload is None:
            return None
        playbook = run.item.playbook
        assert playbook is not None
        actions = {spec.action for spec in playbook.actions}
        hpa = None
        if settings.Action.SCALE_OUT in actions and target.kind in (
            targets.WorkloadKind.DEPLOYMENT,
            targets.WorkloadKind.STATEFUL_SET,
        ):
            hpa = await fetching.find_hpa(self.kube, target)
        vpa_mode = None
        options = _options(playbook, settings.Action.RAISE_MEMORY)
        if isinstance(options, settings.RaiseMemory) and options.check_vpa:
            vpa_mode = await fetching.find_vpa_update_mode(self.kube, target, unserved=self._unserved)
        metadata = workload.get("metadata") or {}
        run.workload_uid = metadata.get("uid")
        entries = ledgers.load((metadata.get("annotations") or {}).get(ledgers.ANNOTATION))
        run.thread = resolving.thread_of(entries, run.event.occurrence_id) or run.thread
        return planning.WorkloadSnapshot(
            target=target,
            workload=workload,
            pod=pod,
            ledger=tuple(entries),
            hpa=hpa,
            vpa_update_mode=vpa_mode,
        )

    def _guard_snapshot(self, snapshot: planning.WorkloadSnapshot) -> cluster_state.TargetSnapshot:
        return cluster_state.TargetSnapshot.from_annotations(
            namespace=snapshot.target.namespace,
            annotations=snapshot.annotations,
            own_namespace=self.own_namespace,
        )

    async def _process(self, run: _Run, pod: client.Body | None, workload: client.Body | None) -> None:
        target = run.target
        playbook = run.item.playbook
        assert target is not None and playbook is not None
        noted = False
        for attempt in range(self.settings.kubernetes.conflict_attempts):
            if attempt:
                workload = None  # someone wrote it since: read it again
                if run.event.pod and run.event.namespace:
                    # Someone wrote the workload since we read it: the pod may have changed too.
                    pod = await fetching.read_optional(
                        self.kube, fetching.pod_path(run.event.namespace, run.event.pod)
                    )
            snapshot = await self._snapshot(run, target, pod, workload)
            if snapshot is None:
                self._report(
                    run,
                    _first_action(playbook),
                    decisions.Outcome.SKIPPED,
                    decisions.Decision.refuse(
                        decisions.Reason.TARGET_NOT_FOUND, f"{target.key} no longer exists"
                    ),
                )
                return
            still = resolving.check_still_true(event=run.event, pod=pod, entries=snapshot.ledger)
            if not still.allowed:
                kind = notices.NoticeKind.REPEAT if still.reason is decisions.Reason.ALREADY_HANDLED else None
                self._report(run, _first_action(playbook), decisions.Outcome.SKIPPED, still, kind=kind)
                return
            guard_snapshot = self._guard_snapshot(snapshot)
            if not noted and guarding.check_scope(snapshot=guard_snapshot, settings=self.settings) is None:
                noted = True
                await self._note_alerting(run, target)
            now = self.clock()
            proposal = planning.propose(
                snapshot=snapshot,
                event=run.event,
                playbook=playbook,
                config=self.settings,
                now=now,
                identity=self.identity,
                thread=run.thread,
            )
            for action, refusal in proposal.skipped:
                self._report(run, action, decisions.Outcome.SKIPPED, refusal)
                await self._event(run, action, decisions.Outcome.SKIPPED, refusal.reason, refusal.detail)
            done: str | None = None
            if proposal.mutation is not None:
                done = await self._act(run, snapshot, proposal.mutation, guard_snapshot)
                if done is _REPLAN:
                    continue  # 409: someone wrote first; re-read, re-check and re-plan
            await self._extras(run, snapshot, proposal.extras, guard_snapshot, done=done)
            return
        self._report(
            run,
            _first_action(playbook),
            decisions.Outcome.FAILED,
            decisions.Decision.refuse(
                decisions.Reason.CONFLICT,
                f"the workload kept changing: {self.settings.kubernetes.conflict_attempts} attempts lost to 409",
            ),
        )

    async def _note_alerting(self, run: _Run, target: targets.Target) -> None:
        try:
            _, transition = await self.state_store.note_alerting(target, now=self.clock())
        except errors.KubeError as e:
            logger.warning("could not count %s in the blast radius: %s", target.key, e.message)
            return
        if transition is not None:
            self.notifiers.notify(
                notices.Notice(
                    kind=notices.NoticeKind.BREAKER,
                    at=self.clock(),
                    incident="breaker",
                    summary=f"blast-radius breaker {transition.value}",
                    target=target,
                    guardrail=decisions.Guardrail.BLAST_RADIUS,
                    dry_run=self.dry_run,
                )
            )

    async def _act(
        self,
        run: _Run,
        snapshot: planning.WorkloadSnapshot,
        mutation: planning.Mutation,
        guard_snapshot: cluster_state.TargetSnapshot,
    ) -> str | None:
        """Guard and write: a summary of what was done, `_REPLAN` after a 409, or None when nothing was written
        (blocked or refused, already reported). Extras (diagnostics, escalation) follow in every case."""
        plan = mutation.plan
        action = plan.action
        # The state this process last saw is good enough to go on: `reserve` re-checks pause, breaker and
        # budget on the freshest state under compare-and-swap before the write. Not in dry-run (nothing is
        # reserved there), and not to refuse: a refusal is decided again on a fresh read.
        cluster = None if self.dry_run else self.state_store.last_known()
        decision: decisions.Decision | None = None
        if cluster is not None:
            decision = self.guard(
                plan=plan, snapshot=guard_snapshot, cluster=cluster, settings=self.settings, now=self.clock()
            )
        if decision is None or not decision.allowed:
            decision = self.guard(
                plan=plan,
                snapshot=guard_snapshot,
                cluster=await self.state_store.read(),
                settings=self.settings,
                now=self.clock(),
            )
        if not decision.allowed:
            self._blocked(run, plan, decision)
            await self._event(
                run,
                action,
                decisions.Outcome.BLOCKED,
                decision.reason,
                decision.detail,
                guardrail=decision.guardrail,
            )
            return None
        options = _options(run.item.playbook, action) if run.item.playbook else None
        if mutation.memory is not None:
            refusal = await raise_memory.precheck(self.kube, snapshot=snapshot, change=mutation.memory)
            if refusal is not None:
                self._report(run, action, decisions.Outcome.FAILED, refusal, plan=plan)
                await self._event(run, action, decisions.Outcome.FAILED, refusal.reason, refusal.detail)
                return None
        reserved = False
        if not self.dry_run:
            budget = await self.state_store.reserve(now=self.clock())
            if not budget.allowed:
                self._blocked(run, plan, budget)
                await self._event(
                    run,
                    action,
                    decisions.Outcome.BLOCKED,
                    budget.reason,
                    budget.detail,
                    guardrail=budget.guardrail,
                )
                return None
            reserved = True
        try:
            try:
                written = await self._write(snapshot, mutation)
            finally:
                self._wrote(snapshot.target.key)
        except errors.KubeConflict:
            if reserved:
                await self.state_store.return_budget(now=self.clock())
            logger.info("409 on %s: re-reading and re-planning", snapshot.target.key)
            return _REPLAN
        except errors.KubeError as e:
            if reserved and not isinstance(e, errors.KubeUnavailable):
                await self.state_store.return_budget(now=self.clock())
            if mutation.hpa_patch is not None and not self.dry_run:
                # The ledger entry may already claim the action (it is written before the HPA): mark it failed.
                with contextlib.suppress(errors.KubeError):
                    await self._record_result(
                        snapshot.target, mutation.entry, decisions.Outcome.FAILED, extra=None
                    )
            reason = _reason_for(e)
            self._report(
                run, action, decisions.Outcome.FAILED, decisions.Decision.refuse(reason, e.message), plan=plan
            )
            await self._event(run, action, decisions.Outcome.FAILED, reason, e.message)
            return None
        extra = ""
        if (
            mutation.memory is not None
            and isinstance(options, settings.RaiseMemory)
            and options.resize_in_place
        ):
            extra = await raise_memory.resize_in_place(
                self.kube, snapshot=snapshot, change=mutation.memory, dry_run=self.dry_run
            )
        outcome = decisions.Outcome.WOULD_DO if self.dry_run else decisions.Outcome.DONE
        summary = _describe(plan)
        self._report(run, action, outcome, decisions.Decision.allow(extra), plan=plan, summary=summary)
        await self._event(run, action, outcome, decisions.Reason.ALLOWED, f"{summary}. {extra}".strip())
        if (
            not self.dry_run
            and (mutation.changes_workload or mutation.hpa_patch is not None)
            and action is not settings.Action.EVICT_POD
        ):
            self._verify_later(run, snapshot, mutation, written, options)
        return summary

    async def _write(self, snapshot: planning.WorkloadSnapshot, mutation: planning.Mutation) -> client.Body:
        action = mutation.plan.action
        if action is settings.Action.RAISE_MEMORY:
            carry_out = raise_memory.carry_out
        elif action is settings.Action.SCALE_OUT:
            carry_out = scale_out.carry_out
        elif action is settings.Action.EVICT_POD:
            carry_out = evict_pod.carry_out
        else:
            carry_out = rollout_restart.carry_out
        return await carry_out(self.kube, snapshot=snapshot, mutation=mutation, dry_run=self.dry_run)

    def _blocked(self, run: _Run, plan: decisions.Plan, decision: decisions.Decision) -> None:
        if decision.guardrail is not None:
            self.metrics.guardrail_blocks.labels(decision.guardrail.value).inc()
        kind = notices.NoticeKind.ESCALATION if decision.guardrail is decisions.Guardrail.CAP else None
        self._report(run, plan.action, decisions.Outcome.BLOCKED, decision, plan=plan, kind=kind)

    async def _extras(
        self,
        run: _Run,
        snapshot: planning.WorkloadSnapshot,
        extras: tuple[settings.ActionSpec, ...],
        guard_snapshot: cluster_state.TargetSnapshot,
        *,
        done: str | None,
    ) -> None:
        diagnostics = ""
        for spec in extras:
            plan = decisions.Plan(
                playbook=run.playbook,
                action=spec.action,
                target=snapshot.target,
                occurrence_id=run.event.occurrence_id,
                pod=run.event.pod,
            )
            cluster = await self.state_store.read()
            decision = self.guard(
                plan=plan, snapshot=guard_snapshot, cluster=cluster, settings=self.settings, now=self.clock()
            )
            if not decision.allowed:
                self._blocked(run, plan, decision)
                continue
            if isinstance(spec.capture_diagnostics, settings.CaptureDiagnostics) and run.event.namespace:
                diagnostics = await capture_diagnostics.capture(
                    self.kube,
                    namespace=run.event.namespace,
                    pod_name=run.event.pod,
                    pod=snapshot.pod,
                    events=spec.capture_diagnostics.events,
                )
                self._report(
                    run,
                    spec.action,
                    decisions.Outcome.DONE,
                    decisions.Decision.allow(diagnostics),
                    plan=plan,
                    summary=f"diagnostics of {run.event.namespace}/{run.event.pod}",
                )
            elif isinstance(spec.escalate, settings.Escalate):
                text = escalate.message(spec.escalate, already_done=done)
                if diagnostics:
                    text = f"{text}\n{diagnostics}"
                self._report(
                    run,
                    spec.action,
                    decisions.Outcome.ESCALATED,
                    decisions.Decision.allow(text),
                    plan=plan,
                    kind=notices.NoticeKind.ESCALATION,
                    summary=f"{snapshot.target.key} needs a human: {spec.escalate.message}",
                )
                await self._event(
                    run, spec.action, decisions.Outcome.ESCALATED, decisions.Reason.ALLOWED, text
                )

    # ---- verification ------------------------------------------------------------------------------------

    def _verify_later(
        self,
        run: _Run,
        snapshot: planning.WorkloadSnapshot,
        mutation: planning.Mutation,
        written: client.Body,
        options: object | None,
    ) -> None:
        generation = int((written.get("metadata") or {}).get("generation") or 0)
        task = asyncio.create_task(
            self._verify(run, snapshot, mutation, generation, options), name=f"verify:{snapshot.target.key}"
        )
        self._verifications.add(task)
        task.add_done_callback(self._verifications.discard)

    async def _verify(
        self,
        run: _Run,
        snapshot: planning.WorkloadSnapshot,
        mutation: planning.Mutation,
        generation: int,
        options: object | None,
    ) -> None:
        target = snapshot.target
        action = mutation.plan.action
        try:
            verdict = await verifying.follow(
                self.kube,
                target=target,
                generation=generation,
                since=mutation.entry.at,
                timeout_seconds=self.settings.verification.timeout_seconds,
                poll_seconds=self.settings.verification.poll_seconds,
            )
            reverted = ""
            change = mutation.memory
            revert = (
                verdict.outcome is decisions.Outcome.FAILED
                and change is not None
                and isinstance(options, settings.RaiseMemory)
                and options.revert_on_failure
            )
            if revert and change is not None:
                current: list[bool] = []

                def revert_patch(workload: client.Body) -> dict[str, object] | None:
                    # Read with the write it goes into: someone may have changed the limit while the rollout
                    # was followed, and writing the old value over theirs would undo a fix.
                    current[:] = [
                        planning.still_raised(
                            planning.WorkloadSnapshot(target=target, workload=workload), change
                        )
                    ]
                    return planning.memory_revert_patch(change) if current[0] else None

                written = await self._record_result(
                    target, mutation.entry, verdict.outcome, extra_for=revert_patch
                )
                if not written:
                    reverted = " Not reverted: the workload could not be written."
                elif current == [True]:
                    reverted = f" Reverted to {mutation.plan.from_value}."
                else:
                    reverted = " Not reverted: the limit was changed since the raise."
            else:
                await self._record_result(target, mutation.entry, verdict.outcome)
        except errors.KubeError as e:
            verdict = verifying.Verdict(
                decisions.Outcome.FAILED, f"could not follow the rollout: {e.message}"
            )
            reverted = ""
        except Exception:
            logger.exception("verifying %s failed", target.key)
            return
        detail = verdict.detail + reverted
        if verdict.outcome is decisions.Outcome.FAILED:
            self.metrics.actions.labels(run.playbook, action.value, decisions.Outcome.FAILED.value).inc()
        self.notifiers.notify(
            notices.Notice(
                kind=notices.NoticeKind.VERIFICATION,
                at=self.clock(),
                incident=run.event.occurrence_id,
                summary=f"{_describe(mutation.plan)}: rollout {'completed' if verdict.outcome is decisions.Outcome.DONE else 'failed'}",
                event=run.event,
                target=target,
                playbook=run.playbook,
                action=action,
                outcome=verdict.outcome,
                from_value=mutation.plan.from_value,
                to_value=mutation.plan.to_value,
                detail=detail,
                thread=run.thread,
            )
        )
        await self._event(
            run,
            action,
            verdict.outcome,
            decisions.Reason.ROLLOUT_COMPLETE
            if verdict.outcome is decisions.Outcome.DONE
            else decisions.Reason.ROLLOUT_FAILED,
            f"verification: {detail}",
            verb="verify",
        )

    async def _record_result(
        self,
        target: targets.Target,
        entry: ledgers.LedgerEntry,
        result: decisions.Outcome,
        *,
        extra: dict[str, object] | None = None,
        extra_for: Callable[[client.Body], dict[str, object] | None] | None = None,
    ) -> bool:
        """Write the verdict into the ledger entry (and, for a revert, the previous values) atomically; False
        when nothing was written (the workload is gone, or kept changing)."""
        if result is entry.result and extra is None and extra_for is None:
            return False
        try:
            return await patching.update_ledger(
                self.kube,
                target,
                lambda entries: planning.with_result(entries, entry, result),
                attempts=patching.LEDGER_WRITE_ATTEMPTS,
                extra=extra,
                extra_for=extra_for,
            )
        finally:
            self._wrote(target.key)

    # ---- reporting ---------------------------------------------------------------------------------------

    def _report(
        self,
        run: _Run,
        action: settings.Action,
        outcome: decisions.Outcome,
        decision: decisions.Decision,
        *,
        plan: decisions.Plan | None = None,
        kind: notices.NoticeKind | None = None,
        summary: str | None = None,
    ) -> None:
        """Metric, log line and notice for one outcome."""
        if (outcome is decisions.Outcome.FAILED and decision.reason in _PASSING_REASONS) or (
            outcome is decisions.Outcome.BLOCKED and decision.guardrail in _PASSING_GUARDRAILS
        ):
            run.passing = True
        self.metrics.actions.labels(run.playbook, action.value, outcome.value).inc()
        self.metrics.action_duration.labels(action.value).observe(time.monotonic() - run.started)
        if kind is None:
            kind = (
                notices.NoticeKind.ACTION
                if outcome in (decisions.Outcome.DONE, decisions.Outcome.WOULD_DO)
                else notices.NoticeKind.REFUSAL
            )
        where = run.target.key if run.target else f"{run.event.namespace}/{run.event.pod}"
        text = summary or f"{action.value} on {where}: {outcome.value} ({decision.reason.value})"
        logger.info(
            "%s",
            text,
            extra={
                "occurrence_id": run.event.occurrence_id,
                "outcome": outcome.value,
                "reason": decision.reason.value,
            },
        )
        self.notifiers.notify(
            notices.Notice(
                kind=kind,
                at=self.clock(),
                incident=run.event.occurrence_id,
                summary=text,
                event=run.event,
                target=run.target,
                playbook=run.playbook or None,
                action=action,
                outcome=outcome,
                reason=decision.reason,
                guardrail=decision.guardrail,
                from_value=plan.from_value if plan else None,
                to_value=plan.to_value if plan else None,
                dry_run=self.dry_run,
                detail=decision.detail,
                thread=run.thread,
            )
        )

    async def _event(
        self,
        run: _Run,
        action: settings.Action,
        outcome: decisions.Outcome,
        reason: decisions.Reason,
        note: str,
        *,
        guardrail: decisions.Guardrail | None = None,
        verb: str | None = None,
    ) -> None:
        if run.target is None:
            return
        label = guardrail.value if guardrail is not None else reason.value
        await events.record(
            self.kube,
            target=run.target,
            uid=run.workload_uid,
            action=verb or action.value,
            reason=f"{outcome.value}:{label}" if outcome is not decisions.Outcome.DONE else outcome.value,
            note=f"[{run.playbook}] {'(dry-run) ' if self.dry_run else ''}{note}",
            warning=outcome in _WARNING_OUTCOMES,
            identity=self.identity,
            now=self.clock(),
        )


def _describe(plan: decisions.Plan) -> str:
    target = plan.target.key
    if plan.action is settings.Action.RAISE_MEMORY:
        return (
            f"memory limit of {target} container {plan.container} raised {plan.from_value} → {plan.to_value}"
        )
    if plan.action is settings.Action.SCALE_OUT:
        return f"{target} scaled out {plan.from_value} → {plan.to_value}"
    if plan.action is settings.Action.EVICT_POD:
        return f"pod {plan.pod} of {target} evicted"
    if plan.action is settings.Action.ROLLOUT_RESTART:
        return f"{target} restarted"
    return f"{plan.action.value} on {target}"
