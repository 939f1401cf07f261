"""Reporting every outcome exactly once: a metric, a log line, a notice and, where it helps, a Kubernetes Event.

Stage: notify. One `Reporter` per process; processing, acting and verifying hand it what happened and it
says so everywhere, in one shape: the same enum values become the metric's labels, the notice's fields and
the Event's reason, so an operator can follow one word from Slack to Grafana to `kubectl describe`. A muted
reporter (the `plan` command's preview) says nothing anywhere. It decides nothing about incidents, and a
failing notifier or Event write never fails a mitigation.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import time
from collections.abc import Callable
from typing import Protocol

import cachetools

from responder import metrics as metrics_mod
from responder.kube import client, events
from responder.logic import analysing
from responder.models import (
    alerts,
    analyses,
    cluster_state,
    decisions,
    notices,
    quantities,
    settings,
    targets,
    work,
)

__all__ = ["Notifier", "Reporter", "Run"]

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime.datetime]

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

_QUIETED_OUTCOMES = frozenset(
    {decisions.Outcome.BLOCKED, decisions.Outcome.FAILED, decisions.Outcome.SKIPPED}
)
"""Refusals: said once per workload, action and reason within `notifiers.repeat_window_seconds`."""

_REMEMBERED_REFUSALS = 10_000

_ESCALATING_GUARDRAILS = frozenset({decisions.Guardrail.CAP, decisions.Guardrail.CEILING})

_WARNING_OUTCOMES = frozenset(
    {decisions.Outcome.FAILED, decisions.Outcome.BLOCKED, decisions.Outcome.ESCALATED}
)


class Notifier(Protocol):
    """Anything that takes notices without blocking (`responder.engine.notifying.Notifiers`)."""

    def notify(self, notice: notices.Notice) -> None: ...


@dataclasses.dataclass
class Run:
    """What one alert's processing has learned so far (for reports)."""

    item: work.WorkItem
    started: float = dataclasses.field(default_factory=time.monotonic)
    target: targets.Target | None = None
    workload_uid: str | None = None
    thread: str | None = None
    diagnostics: str = ""
    """What the run's capture_diagnostics / heap_dump found, for an escalation after the mitigation."""
    passing: bool = False
    """An outcome that may change soon (API trouble, a PDB, budget, breaker, pause): take the next delivery."""
    analysis: analyses.Analysis | None = None
    """The workload's memory history, when Prometheus is configured (investigation stage)."""

    quieted: set[tuple[settings.Action, decisions.Outcome]] = dataclasses.field(default_factory=set)
    """Outcomes of this run not re-sent (a repeat within the window): their Events are not written either."""

    def analysis_line(self, plan: decisions.Plan | None = None) -> str | None:
        """The analysis in one line; for a memory raise, with the hours the new limit buys a leak."""
        if self.analysis is None:
            return None
        new_limit = None
        if plan is not None and plan.action is settings.Action.RAISE_MEMORY and plan.to_value:
            try:
                new_limit = quantities.parse_bytes(plan.to_value)
            except ValueError:
                new_limit = None
        return analysing.summarize(self.analysis, new_limit_bytes=new_limit)

    @property
    def event(self) -> alerts.AlertEvent:
        return self.item.event

    @property
    def playbook(self) -> str:
        return self.item.playbook.name if self.item.playbook else ""

    @property
    def first_action(self) -> settings.Action:
        """The action outcomes that happen before any action was tried are counted under."""
        playbook = self.item.playbook
        if playbook is None or not playbook.actions:
            return settings.Action.ESCALATE
        return playbook.actions[0].action


class Reporter:
    def __init__(
        self,
        *,
        metrics: metrics_mod.Metrics,
        notifiers: Notifier,
        kube: client.Kube,
        clock: Clock,
        identity: str,
        dry_run: bool,
        may_write_in: Callable[[str], bool] = lambda namespace: True,
        repeat_window_seconds: float = 0.0,
        muted: bool = False,
    ) -> None:
        """`may_write_in(namespace)`: whether the service may write there at all (Events included)."""
        self.metrics = metrics
        self.notifiers = notifiers
        self.kube = kube
        self.clock = clock
        self.identity = identity
        self.dry_run = dry_run
        self.may_write_in = may_write_in
        self.repeat_window_seconds = repeat_window_seconds
        self.muted = muted
        # (where, action, outcome, reason, guardrail) → (when last sent, repeats not sent since); bounded.
        self._sent: cachetools.LRUCache[tuple[str, ...], tuple[datetime.datetime, int]] = cachetools.LRUCache(
            maxsize=_REMEMBERED_REFUSALS
        )

    def muted_copy(self) -> Reporter:
        """A reporter that says nothing (previews)."""
        return Reporter(
            metrics=self.metrics,
            notifiers=self.notifiers,
            kube=self.kube,
            clock=self.clock,
            identity=self.identity,
            dry_run=self.dry_run,
            may_write_in=self.may_write_in,
            repeat_window_seconds=self.repeat_window_seconds,
            muted=True,
        )

    def report(
        self,
        run: Run,
        action: settings.Action,
        outcome: decisions.Outcome,
        decision: decisions.Decision,
        *,
        plan: decisions.Plan | None = None,
        kind: notices.NoticeKind | None = None,
        summary: str | None = None,
        log_lines: tuple[str, ...] = (),
        silence_id: str | None = None,
    ) -> None:
        """Metric, log line and notice for one outcome."""
        if (outcome is decisions.Outcome.FAILED and decision.reason in _PASSING_REASONS) or (
            outcome is decisions.Outcome.BLOCKED and decision.guardrail in _PASSING_GUARDRAILS
        ):
            run.passing = True
        if self.muted:
            return
        self.metrics.actions.labels(run.playbook, action.value, outcome.value).inc()
        self.metrics.action_duration.labels(action.value).observe(time.monotonic() - run.started)
        where = run.target.key if run.target else f"{run.event.namespace}/{run.event.pod}"
        repeats = self._repeats(where, action, outcome, decision)
        if repeats is None:
            run.quieted.add((action, outcome))
            logger.debug("%s on %s: %s again, not re-sent", action.value, where, outcome.value)
            return
        if repeats:
            decision = dataclasses.replace(
                decision, detail=f"{decision.detail} ({repeats} more like this since the last notice)".strip()
            )
        if kind is None:
            kind = (
                notices.NoticeKind.ACTION
                if outcome in (decisions.Outcome.DONE, decisions.Outcome.WOULD_DO)
                else notices.NoticeKind.REFUSAL
            )
        text = summary or f"{action.value} on {where}: {outcome.value} ({decision.reason.value})"
        extra: dict[str, object] = {
            "occurrence_id": run.event.occurrence_id,
            "outcome": outcome.value,
            "reason": decision.reason.value,
        }
        if run.analysis is not None:
            extra["pattern"] = run.analysis.pattern.value
            extra["analysis"] = run.analysis_line(plan)
        logger.info("%s", text, extra=extra)
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
                analysis=run.analysis,
                log_lines=log_lines,
                silence_id=silence_id,
            )
        )

    def silenced(self, run: Run, action: settings.Action, *, line: str, silence_id: str | None) -> None:
        """A follow-up in the incident's thread about the silence its mitigation earned (or could not get).
        Counted nowhere: the mitigation was counted when it was reported."""
        if self.muted:
            return
        logger.info("%s", line, extra={"occurrence_id": run.event.occurrence_id})
        self.notifiers.notify(
            notices.Notice(
                kind=notices.NoticeKind.SILENCE,
                at=self.clock(),
                incident=run.event.occurrence_id,
                summary=line,
                event=run.event,
                target=run.target,
                playbook=run.playbook or None,
                action=action,
                dry_run=self.dry_run,
                thread=run.thread,
                silence_id=silence_id,
            )
        )

    def _repeats(
        self, where: str, action: settings.Action, outcome: decisions.Outcome, decision: decisions.Decision
    ) -> int | None:
        """None when this refusal repeats one sent within the window (counted, not sent); else how many
        repeats were not sent before it. Storms and Alertmanager's repeats must not bury the on-call."""
        if outcome not in _QUIETED_OUTCOMES or self.repeat_window_seconds <= 0:
            return 0
        key = (where, action.value, outcome.value, decision.reason.value, str(decision.guardrail or ""))
        now = self.clock()
        last = self._sent.get(key)
        if last is not None and (now - last[0]).total_seconds() < self.repeat_window_seconds:
            self._sent[key] = (last[0], last[1] + 1)
            return None
        self._sent[key] = (now, 0)
        return last[1] if last is not None else 0

    async def record_event(
        self,
        run: Run,
        action: settings.Action,
        outcome: decisions.Outcome,
        reason: decisions.Reason,
        note: str,
        *,
        guardrail: decisions.Guardrail | None = None,
        verb: str | None = None,
        plan: decisions.Plan | None = None,
    ) -> None:
        """A Kubernetes Event on the workload (best effort; none before the workload is known, and none in a
        namespace the service is told not to act in: an Event is a write too)."""
        if run.target is None or self.muted or not self.may_write_in(run.target.namespace):
            return
        if (action, outcome) in run.quieted:
            return
        label = guardrail.value if guardrail is not None else reason.value
        line = run.analysis_line(plan)
        if line:
            note = f"{note}; {line}" if note else line
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

    async def refused(
        self,
        run: Run,
        action: settings.Action,
        outcome: decisions.Outcome,
        decision: decisions.Decision,
        *,
        plan: decisions.Plan | None = None,
    ) -> None:
        """An action that was not carried out (skipped or failed): metric, log, notice and Event."""
        self.report(run, action, outcome, decision, plan=plan)
        await self.record_event(run, action, outcome, decision.reason, decision.detail)

    def blocked(
        self,
        run: Run,
        action: settings.Action,
        decision: decisions.Decision,
        *,
        plan: decisions.Plan | None = None,
    ) -> None:
        """A guardrail said no: counted per guardrail. The cap and the ceiling escalate to humans: repeating
        the alert changes neither, so the service has done all it may."""
        if decision.guardrail is not None and not self.muted:
            self.metrics.guardrail_blocks.labels(decision.guardrail.value).inc()
        kind = notices.NoticeKind.ESCALATION if decision.guardrail in _ESCALATING_GUARDRAILS else None
        self.report(run, action, decisions.Outcome.BLOCKED, decision, plan=plan, kind=kind)

    async def blocked_with_event(
        self,
        run: Run,
        action: settings.Action,
        decision: decisions.Decision,
        *,
        plan: decisions.Plan | None = None,
    ) -> None:
        self.blocked(run, action, decision, plan=plan)
        await self.record_event(
            run,
            action,
            decisions.Outcome.BLOCKED,
            decision.reason,
            decision.detail,
            guardrail=decision.guardrail,
        )

    def verified(
        self,
        run: Run,
        plan: decisions.Plan,
        *,
        outcome: decisions.Outcome,
        summary: str,
        detail: str,
    ) -> None:
        """The verdict on a rollout: a failure is counted (the write was counted done when it was made)."""
        if self.muted:
            return
        if outcome is decisions.Outcome.FAILED:
            self.metrics.actions.labels(run.playbook, plan.action.value, decisions.Outcome.FAILED.value).inc()
        self.notifiers.notify(
            notices.Notice(
                kind=notices.NoticeKind.VERIFICATION,
                at=self.clock(),
                incident=run.event.occurrence_id,
                summary=summary,
                event=run.event,
                target=plan.target,
                playbook=run.playbook,
                action=plan.action,
                outcome=outcome,
                reason=decisions.Reason.ROLLOUT_COMPLETE
                if outcome is decisions.Outcome.DONE
                else decisions.Reason.ROLLOUT_FAILED,
                from_value=plan.from_value,
                to_value=plan.to_value,
                detail=detail,
                thread=run.thread,
            )
        )

    def resolved(self, run: Run, *, target: targets.Target | None, thread: str | None) -> None:
        if self.muted:
            return
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

    def breaker(
        self, transition: cluster_state.BreakerTransition, *, target: targets.Target, detail: str
    ) -> None:
        if self.muted:
            return
        self.notifiers.notify(
            notices.Notice(
                kind=notices.NoticeKind.BREAKER,
                at=self.clock(),
                incident="breaker",
                summary=f"blast-radius breaker {transition.value}",
                target=target,
                guardrail=decisions.Guardrail.BLAST_RADIUS,
                dry_run=self.dry_run,
                detail=detail,
            )
        )
