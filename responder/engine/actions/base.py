"""What every action's I/O part offers the engine: carrying out, and the optional hooks around it.

Stage: act. An action's I/O part (`responder.engine.actions.<action>`) exposes `PART`: a `Mutating` for an
action that writes (the engine guards, reserves budget and follows the rollout around it) or an `Additional`
for one carried out beside the mitigation (diagnostics, escalation). It sends what the pure part planned and
decides nothing: whether to act was planning's and guarding's job.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from responder.kube import client
from responder.models import actions, decisions, follow_ups, mutations, notices, settings, targets

__all__ = ["Additional", "AdditionalInput", "AdditionalResult", "FollowUps", "Mutating", "RecordResult"]

RecordResult = Callable[[Callable[[client.Body], Mapping[str, Any] | None] | None], Awaitable[bool]]
"""Writes the verification result into the ledger entry, merging `extra_for(workload just read)` into the
same PATCH when given; False when nothing could be written."""


class CarryOut(Protocol):
    async def __call__(
        self,
        kube: client.Kube,
        *,
        snapshot: mutations.WorkloadSnapshot,
        mutation: mutations.Mutation[Any],
        dry_run: bool,
    ) -> client.Body:
        """Send the planned write(s); the workload as written. Raises `errors.KubeError` (409: re-plan)."""
        ...


class Precheck(Protocol):
    async def __call__(
        self, kube: client.Kube, *, snapshot: mutations.WorkloadSnapshot, mutation: mutations.Mutation[Any]
    ) -> decisions.Decision | None:
        """A refusal found before anything is written (no budget is spent on it), or None."""
        ...


class AfterWrite(Protocol):
    async def __call__(
        self,
        kube: client.Kube,
        *,
        snapshot: mutations.WorkloadSnapshot,
        mutation: mutations.Mutation[Any],
        options: Any,
        dry_run: bool,
    ) -> str:
        """Best-effort follow-up of an accepted write; a line for the notice ("" when there is nothing)."""
        ...


class OnFailedRollout(Protocol):
    async def __call__(
        self,
        *,
        target: targets.Target,
        mutation: mutations.Mutation[Any],
        options: Any,
        record: RecordResult,
    ) -> str | None:
        """Record the failed result (possibly with a revert) through `record`; a sentence for the notice.
        None when the action has nothing special to do for these options (the result is recorded plainly)."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class Mutating:
    carry_out: CarryOut
    precheck: Precheck | None = None
    after_write: AfterWrite | None = None
    on_failed_rollout: OnFailedRollout | None = None


class FollowUps(Protocol):
    """Where what happens later is kept (`responder.engine.following.Following`)."""

    async def add_schedule(
        self,
        *,
        snapshot: mutations.WorkloadSnapshot,
        incident: str,
        playbook: str,
        thread: str | None,
        container: str | None,
        options: actions.ScheduledRestart,
    ) -> tuple[follow_ups.Schedule | None, str]:
        """Begin a restart schedule unless one runs; (the schedule, how it was chosen) or (None, why not)."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class AdditionalInput:
    """What an additional action is given: the alert's pod, the target and what was done so far."""

    target: targets.Target
    namespace: str
    pod_name: str | None
    pod: mutations.Body | None
    done: str | None
    """The mitigation carried out before, in one line (None when nothing was written)."""
    diagnostics: str
    """What an earlier capture_diagnostics of the same run found ("" when none ran)."""
    snapshot: mutations.WorkloadSnapshot | None = None
    """The workload as read for this run."""
    incident: str = ""
    """The alert occurrence being answered."""
    playbook: str = ""
    thread: str | None = None
    container: str | None = None
    """The alerted container."""
    dry_run: bool = False
    follow_ups: FollowUps | None = None
    """None in a preview, in dry-run and in tests without follow-ups: nothing is kept for later."""
    workload: mutations.Body | None = None
    """The top-level workload as read for this run (its annotations, its resourceVersion)."""
    config: settings.Settings | None = None
    """The service's settings (diagnostics options, cooldowns)."""
    now: datetime.datetime | None = None
    identity: str = ""
    """This replica's name, for claims written on the workload."""


@dataclasses.dataclass(frozen=True, slots=True)
class AdditionalResult:
    outcome: decisions.Outcome
    summary: str
    detail: str
    kind: notices.NoticeKind | None = None
    """The notice kind; None for the kind the outcome implies."""
    event: bool = False
    """Also record a Kubernetes Event on the workload."""
    diagnostics: str = ""
    """Diagnostics for the actions after this one."""
    log_lines: tuple[str, ...] = ()
    """Matching lines of the container's previous log, shown as a code block in the notice."""
    event_note: str = ""
    """The Event's note when it should differ from `detail` (Event notes are cut at 1 KiB)."""


class CarryOutAdditional(Protocol):
    async def __call__(self, kube: client.Kube, *, given: AdditionalInput, options: Any) -> AdditionalResult:
        """Carry out a non-mutating action; never raises for a cluster error (it goes into the result)."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class Additional:
    carry_out: CarryOutAdditional
