"""What the pipeline decided and why. Data only.

The same enum values become metric labels, ledger entries, Event reasons and notification text, so an
operator can follow one word from Slack to Grafana to `kubectl describe`.
"""

from __future__ import annotations

import dataclasses
import enum

from responder.models import settings, targets

__all__ = ["Decision", "Guardrail", "Outcome", "Plan", "Reason"]


class Outcome(enum.StrEnum):
    DONE = "done"
    WOULD_DO = "would_do"
    SKIPPED = "skipped"
    BLOCKED = "blocked"
    FAILED = "failed"
    ESCALATED = "escalated"


class Guardrail(enum.StrEnum):
    NAMESPACE = "namespace"
    OPT_OUT = "opt_out"
    CEILING = "ceiling"
    STEP = "step"
    COOLDOWN = "cooldown"
    CAP = "cap"
    BUDGET = "budget"
    BLAST_RADIUS = "blast_radius"
    PAUSED = "paused"


class Reason(enum.StrEnum):
    # Refused at the door, before any request to the API server.
    INVALID_NAME = "invalid_name"
    OUT_OF_SCOPE = "out_of_scope"
    # Nothing to do for this alert.
    NO_PLAYBOOK = "no_playbook"
    RESOLVED = "resolved"
    DUPLICATE = "duplicate"
    MISSING_LABELS = "missing_labels"
    TARGET_NOT_FOUND = "target_not_found"
    POD_GONE = "pod_gone"
    ALREADY_HANDLED = "already_handled"
    NO_NEW_KILL = "no_new_kill"
    NOT_OOM_KILLED = "not_oom_killed"
    """The restarts are not OOM kills (a crash loop): no mitigation helps; diagnostics and escalation only."""
    # The action does not fit the target.
    NO_MEMORY_LIMIT = "no_memory_limit"
    VPA_MANAGED = "vpa_managed"
    NOT_SCALABLE = "not_scalable"
    PAUSED_ROLLOUT = "paused_rollout"
    AT_CEILING = "at_ceiling"
    HPA_AT_MAX = "hpa_at_max"
    GITOPS_MANAGED = "gitops_managed"
    """A GitOps controller owns the workload and the playbook only recommends (`gitops: recommend`)."""
    # The cluster refused.
    QUOTA_REFUSED = "quota_refused"
    LIMIT_RANGE_REFUSED = "limit_range_refused"
    PDB_BLOCKED = "pdb_blocked"
    FORBIDDEN = "forbidden"
    """RBAC: the service's own identity may not make that request (not a quota or a LimitRange)."""
    INVALID = "invalid"
    CONFLICT = "conflict"
    API_ERROR = "api_error"
    # Verification of a written change.
    ROLLOUT_COMPLETE = "rollout_complete"
    ROLLOUT_FAILED = "rollout_failed"
    # A guardrail said no (the guardrail itself is in Decision.guardrail).
    GUARDRAIL = "guardrail"
    # Go ahead.
    ALLOWED = "allowed"


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    """One concrete change to one workload, computed from live state, not yet guarded or written."""

    playbook: str
    action: settings.Action
    target: targets.Target
    occurrence_id: str
    container: str | None = None
    pod: str | None = None
    from_value: str | None = None
    """Human-readable value before ("512Mi", "3 replicas")."""
    to_value: str | None = None
    """Human-readable value after."""
    from_amount: int | None = None
    """The value before as a number: bytes for raise_memory, replicas for scale_out (None for other actions)."""
    to_amount: int | None = None
    """The value after as a number, in the same unit; guardrails check ceilings and steps on it."""
    note: str = ""
    """What the humans must know besides the change itself (a GitOps controller will revert it: what to
    commit instead); carried into the notice and the Event."""


@dataclasses.dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: Reason
    detail: str = ""
    guardrail: Guardrail | None = None

    @classmethod
    def allow(cls, detail: str = "") -> Decision:
        return cls(allowed=True, reason=Reason.ALLOWED, detail=detail)

    @classmethod
    def refuse(cls, reason: Reason, detail: str) -> Decision:
        return cls(allowed=False, reason=reason, detail=detail)

    @classmethod
    def block(cls, guardrail: Guardrail, detail: str) -> Decision:
        return cls(allowed=False, reason=Reason.GUARDRAIL, detail=detail, guardrail=guardrail)
