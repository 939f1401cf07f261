"""What every action's pure part is given and returns, and the helpers they share. Pure.

Stage: plan. An action's pure part (`responder.logic.actions.<action>`) exposes `PART`: `propose` turns a
`Context` (the snapshot, the alert, the playbook, the settings, the time) and the action's typed options into
a `mutations.Mutation` or a refusal `decisions.Decision`; `describe` says in one line what a plan does. It
never calls the API and never reads the clock.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable, Mapping
from typing import Any

from responder.logic import guarding
from responder.models import actions, alerts, decisions, ledgers, mutations, settings, targets

__all__ = ["Context", "PurePart", "merge", "not_applicable", "template_patch"]

Patch = dict[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class Context:
    """Everything a pure part plans from, and the shapes its plan, ledger entry and PATCH take."""

    snapshot: mutations.WorkloadSnapshot
    event: alerts.AlertEvent
    playbook: str
    config: settings.Settings
    now: datetime.datetime
    identity: str
    thread: str | None

    def entry(
        self,
        action: actions.Action,
        *,
        from_value: str | None,
        to_value: str | None,
        container: str | None = None,
    ) -> ledgers.LedgerEntry:
        return ledgers.LedgerEntry(
            action=action,
            from_value=from_value,
            to_value=to_value,
            playbook=self.playbook,
            occurrence=self.event.occurrence_id,
            at=self.now,
            by=self.identity,
            container=container,
            thread=self.thread,
        )

    def plan(
        self,
        action: actions.Action,
        *,
        from_value: str | None,
        to_value: str | None,
        container: str | None = None,
        from_amount: int | None = None,
        to_amount: int | None = None,
    ) -> decisions.Plan:
        return decisions.Plan(
            playbook=self.playbook,
            action=action,
            target=self.snapshot.target,
            occurrence_id=self.event.occurrence_id,
            container=container,
            pod=self.event.pod,
            from_value=from_value,
            to_value=to_value,
            from_amount=from_amount,
            to_amount=to_amount,
        )

    def clamp(self, action: actions.Action, *, from_amount: int | None, to_amount: int) -> int:
        # The guard's own ceiling and step arithmetic, so that a formula overshooting yields a capped change
        # rather than a guardrail block (an unparsable annotation reads as a ceiling of 0).
        return guarding.clamp_amount(
            action=action,
            from_amount=from_amount,
            to_amount=to_amount,
            annotations=self.snapshot.annotations,
            settings=self.config,
            playbook=self.playbook,
        )

    def recorded(self, entry: ledgers.LedgerEntry, change: Patch | None = None) -> Patch:
        """The workload PATCH: the change, the ledger with `entry` appended, the resourceVersion precondition."""
        patch = ledgers.patch_body(
            self.snapshot.resource_version, ledgers.append(self.snapshot.ledger, entry)
        )
        return merge(patch, change) if change else patch


Proposed = mutations.Mutation[Any] | decisions.Decision


@dataclasses.dataclass(frozen=True, slots=True)
class PurePart:
    """An action's pure part. `propose` is None for a non-mutating action (nothing to plan)."""

    describe: Callable[[decisions.Plan], str]
    propose: Callable[[Context, Any], Proposed] | None = None
    """(context, the action's options) → the mutation, or why the action does not apply."""


def merge(base: Patch, extra: Mapping[str, Any]) -> Patch:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def template_patch(spec_patch: Patch) -> Patch:
    return {"spec": {"template": spec_patch}}


def not_applicable(kind: targets.WorkloadKind, action: actions.Action) -> decisions.Decision:
    return decisions.Decision.refuse(
        decisions.Reason.NOT_SCALABLE, f"{action.value} does not apply to a {kind.value}"
    )
