"""A planned write and what it was planned from. Data only.

`WorkloadSnapshot` is everything read from the cluster about one target; an action's pure part
(`responder.logic.actions.<action>`) turns it into a `Mutation`: the plan the guard judges, the ledger entry,
the exact workload PATCH and the action's own typed change, which its I/O part carries out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

from responder.models import actions, analyses, decisions, ledgers, targets

__all__ = ["Change", "Mutation", "Proposal", "WorkloadSnapshot"]

Body = Mapping[str, Any]
Patch = dict[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class WorkloadSnapshot:
    """Everything read from the cluster about one target, at one resourceVersion."""

    target: targets.Target
    workload: Body
    """The top-level object (for a bare Pod: the pod itself), as the API's JSON."""
    pod: Body | None = None
    """The alerted pod, or None when it is gone (or the alert named none)."""
    ledger: tuple[ledgers.LedgerEntry, ...] = ()
    hpa: Body | None = None
    """The HorizontalPodAutoscaler whose scaleTargetRef is the workload, if any."""
    vpa_update_mode: str | None = None
    """updateMode of a VerticalPodAutoscaler targeting the workload; None when there is none (or no VPA CRD)."""
    analysis: analyses.Analysis | None = None
    """The workload's memory history (investigation stage), when Prometheus is configured."""

    @property
    def annotations(self) -> Mapping[str, str]:
        return dict(self.workload.get("metadata", {}).get("annotations") or {})

    @property
    def resource_version(self) -> str:
        return str(self.workload.get("metadata", {}).get("resourceVersion", ""))

    @property
    def template_spec(self) -> Body:
        if self.target.kind is targets.WorkloadKind.POD:
            return dict(self.workload.get("spec") or {})
        return dict((self.workload.get("spec") or {}).get("template", {}).get("spec") or {})


@dataclasses.dataclass(frozen=True, slots=True)
class Change:
    """What one action changes, beyond the workload PATCH; each action's pure part defines its own."""

    @property
    def changes_workload(self) -> bool:
        """Whether the workload PATCH carries the change itself (rather than only its ledger entry)."""
        return True

    @property
    def expected_replicas(self) -> int | None:
        """The replica count the rollout must reach to be verified (None: the workload's own count)."""
        return None


ChangeT_co = TypeVar("ChangeT_co", bound=Change, covariant=True)


@dataclasses.dataclass(frozen=True, slots=True)
class Mutation(Generic[ChangeT_co]):
    """A planned write, with the exact bodies to send."""

    plan: decisions.Plan
    entry: ledgers.LedgerEntry
    workload_patch: Patch
    """Strategic merge patch for the workload: the change (if it lives on the workload), the ledger and the
    resourceVersion precondition."""
    change: ChangeT_co
    """The action's own typed change (`MemoryChange`, `ScaleChange`, ...)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Proposal:
    mutation: Mutation[Change] | None
    """The first mutating action of the playbook that applies, or None."""
    skipped: tuple[tuple[actions.Action, decisions.Decision], ...] = ()
    """Actions tried before it (or instead of it) that did not apply, with why."""
    extras: tuple[actions.ActionSpec, ...] = ()
    """The non-mutating actions (diagnostics, escalation): always carried out in addition."""
