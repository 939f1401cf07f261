"""What notifiers are told: one event model for Slack, generic webhooks, Kubernetes Events and logs. Data only."""

from __future__ import annotations

import dataclasses
import datetime
import enum

from responder.models import alerts, analyses, decisions, settings, targets

__all__ = ["Notice", "NoticeKind"]


class NoticeKind(enum.StrEnum):
    ACTION = "action"
    """A mitigation was written (or, in dry-run, would have been)."""
    REFUSAL = "refusal"
    """A mitigation was not carried out: a guardrail blocked it, the cluster refused it, or it did not apply."""
    VERIFICATION = "verification"
    """A rollout that followed a mitigation finished or failed."""
    REPEAT = "repeat"
    """The alert fired again for an incident already handled."""
    RESOLVED = "resolved"
    """Alertmanager resolved the alert."""
    ESCALATION = "escalation"
    """Humans must act: the per-workload cap was reached or a playbook escalates."""
    SILENCE = "silence"
    """An Alertmanager silence was created after a mitigation (or could not be), or expired early."""
    BREAKER = "breaker"
    """The blast-radius breaker opened or closed, or the service was paused or resumed."""
    FOLLOW_UP = "follow_up"
    """After a mitigation: a verdict at a horizon, a scheduled restart, a schedule's end, the incident closed."""


@dataclasses.dataclass(frozen=True, slots=True)
class Notice:
    kind: NoticeKind
    at: datetime.datetime
    incident: str
    """Threads follow-ups: the alert occurrence id (or "breaker" for cluster-wide notices)."""
    summary: str
    """One line a person reads first."""
    event: alerts.AlertEvent | None = None
    target: targets.Target | None = None
    playbook: str | None = None
    action: settings.Action | None = None
    outcome: decisions.Outcome | None = None
    reason: decisions.Reason | None = None
    guardrail: decisions.Guardrail | None = None
    from_value: str | None = None
    to_value: str | None = None
    dry_run: bool = False
    detail: str = ""
    thread: str | None = None
    """Notifier thread reference recovered from the workload's ledger, if any."""
    log_lines: tuple[str, ...] = ()
    """Matching lines of the container's previous log (redacted, capped), shown as a code block."""
    silence_id: str | None = None
    """The Alertmanager silence created after the action, if any."""
    truncated_alerts: int = 0
    """Alerts Alertmanager left out of its notifications (`truncatedAlerts`) since the previous notice: they
    never reached the service, so nothing was done about them."""
    analysis: analyses.Analysis | None = None
    """The workload's memory history (RB-010 Step 3), when Prometheus is configured."""
