"""The durable follow-up record of one workload: what happens later, kept in Kubernetes. Data only.

After a mitigation the runbook's work is not over (RB-010 Step 6: no OOM kills for 48 h, restarts not
increasing, memory under 80 % of the limit; Solution 4: periodic restarts until the fix ships). Everything
that must happen later for one workload lives in one `FollowUp`: the verdicts still due at their horizons, a
rollout still being verified, a restart schedule. It is stored as JSON in one Lease per workload in the
service's namespace (`responder.kube.follow_ups`), changed only by compare-and-swap on that Lease's
resourceVersion, so any replica can take over any of it and no in-process timer is the only record of anything.

Validation is strict (`extra="forbid"`, strict types, timezone-aware times): the record drives writes to
workloads, so a hand-edited or damaged one is refused whole and reported, never half-understood. Nothing here
does I/O or reads the clock.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
from typing import Literal

import pydantic
from pydantic import Field

from responder.models import decisions, settings, targets

__all__ = [
    "COMPONENT",
    "DATA_KEY",
    "LABELS",
    "TARGET_ANNOTATION",
    "Claim",
    "EndReason",
    "Evidence",
    "FollowUp",
    "Horizon",
    "MemoryReading",
    "Schedule",
    "StopReason",
    "Verdict",
    "VerdictKind",
    "Verification",
    "decision_outcome",
    "horizon_label",
    "record_name",
]

DATA_KEY = "oom-responder.io/follow-up"
"""Annotation of the Lease holding the JSON of `FollowUp`."""
COMPONENT = "follow-up"
LABELS = {"app.kubernetes.io/name": "oom-responder", "app.kubernetes.io/component": COMPONENT}
"""Every record carries these labels; replicas find the records with one labelled LIST in one namespace."""
TARGET_ANNOTATION = "oom-responder.io/target"
"""The workload key (namespace/Kind/name) on the Lease, for people reading `kubectl get lease -o yaml`."""

UtcTime = pydantic.AwareDatetime
"""A timezone-aware time (naive times are refused: a hand-written "2026-01-01T00:00" is ambiguous)."""


class _Record(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(
        frozen=True, extra="forbid", strict=True, use_attribute_docstrings=True
    )


class VerdictKind(enum.StrEnum):
    """How a mitigated workload is doing at a horizon, against the runbook's Step 6 criteria."""

    STABLE = "stable"
    """No OOM kill and no restarts since the last look; memory (when measured) under the threshold and flat."""
    STILL_LEAKING = "still_leaking"
    """No OOM kill yet, but memory is above the threshold or still rising towards the limit."""
    FAILED = "failed"
    """OOMKilled again since the mitigation, or the containers keep restarting."""
    UNKNOWN = "unknown"
    """Nothing to judge: no pods (scaled to 0), or the workload's pods could not be read."""


class Evidence(enum.StrEnum):
    """What a verdict was based on, said in every verdict."""

    PROMETHEUS = "prometheus"
    """The pods' state from the API and the memory series from Prometheus (% of limit and trend)."""
    POD_STATE = "pod_state"
    """The pods' state from the API alone (OOM kills, restarts): memory % and trend were not measured."""


class StopReason(enum.StrEnum):
    """Why a restart schedule stopped."""

    EXPIRED = "expired"
    MAX_COUNT = "max_count"
    IMAGE_CHANGED = "image_changed"
    STABLE = "stable"
    CANCELLED = "cancelled"
    OPTED_OUT = "opted_out"
    NOT_ALLOWED = "not_allowed"
    """The namespace is excluded or the kind cannot be restarted."""
    WORKLOAD_GONE = "workload_gone"


class EndReason(enum.StrEnum):
    """Why a whole record ended. It is then kept as a tombstone (the service may not delete), idle until the
    workload's next mitigation reuses it."""

    DONE = "done"
    """Every verdict is taken, no verification is pending and no schedule runs."""
    WORKLOAD_GONE = "workload_gone"
    """The workload was deleted (or deleted and created again: another uid)."""
    CANCELLED = "cancelled"


@dataclasses.dataclass(frozen=True, slots=True)
class MemoryReading:
    """Memory of the workload's containers over the time judged, from the Prometheus analysis."""

    peak_percent_of_limit: float | None
    """Highest working set as % of the memory limit; None when not measured."""
    rising: bool = False
    """The analysis found a leak pattern (linear, sawtooth, accelerating)."""
    time_to_oom_seconds: float | None = None
    """Projected time until the working set reaches the limit, when rising."""
    pattern: str | None = None
    """The analysis' pattern name, shown as is."""


class Verdict(_Record):
    kind: VerdictKind
    evidence: Evidence
    detail: str
    """One sentence a person reads: what was seen."""
    at: UtcTime
    """When it was taken."""
    late_seconds: float = Field(0.0, ge=0)
    """How long after its due time it was taken (no replica ran at the time)."""
    peak_percent: float | None = None
    """Peak memory as % of the limit, when measured."""
    time_to_oom_seconds: float | None = None


class Horizon(_Record):
    seconds: float = Field(gt=0)
    """Time after the mitigation at which the verdict is due."""
    due_at: UtcTime
    verdict: Verdict | None = None
    """None while not taken."""


class Verification(_Record):
    """A rollout written by a mitigation and not yet seen to complete or fail (picked up by any replica)."""

    action: settings.Action
    generation: int = Field(ge=0)
    """The workload's metadata.generation the write produced; the rollout of it is followed."""
    since: UtcTime
    """When the write was accepted (FailedCreate Events from then on count)."""
    deadline: UtcTime
    """Reported failed when not complete by then."""
    summary: str
    """What was done, as the action's notice said it ("memory limit ... raised 128Mi → 154Mi")."""
    from_value: str | None = None
    to_value: str | None = None
    container: str | None = None
    """The container whose memory was raised (raise_memory)."""
    limit_from: int | None = Field(None, ge=0)
    """Memory limit before the raise, in bytes (None: there was none)."""
    limit_to: int | None = Field(None, ge=0)
    """Memory limit the raise wrote, in bytes."""
    request_from: int | None = Field(None, ge=0)
    request_to: int | None = Field(None, ge=0)
    """Memory request the raise wrote, in bytes (None: the request was left alone)."""
    revert_on_failure: bool = False
    """Write limit_from back when the rollout fails (only while the limit is still limit_to)."""


class Schedule(_Record):
    """Solution 4: a rolling restart every `interval_seconds` until the fix ships."""

    playbook: str
    interval_seconds: float = Field(gt=0)
    next_at: UtcTime
    expires_at: UtcTime
    max_count: int | None = Field(None, gt=0)
    count: int = Field(0, ge=0)
    """Restarts done so far; the next one is number count + 1 (its ledger occurrence names it)."""
    incident: str = Field(min_length=1)
    """The incident the schedule began with; each restart's ledger occurrence is `<incident>/restart-<n>`."""
    images: dict[str, str]
    """Container name → image when the schedule began; a change means the fix shipped."""
    stable_to_stop: int = Field(2, ge=1)
    """Consecutive stable verdicts after which the schedule stops."""
    stable_seen: int = Field(0, ge=0)
    blocked: str | None = None
    """What kept the last due restart from running (reported once, retried on the next poll)."""
    stop_requested_by: str | None = None
    """Set by `oom-responder schedules cancel`; the next replica to look stops it and says so."""
    stopped: StopReason | None = None
    stopped_at: UtcTime | None = None


class Claim(_Record):
    holder: str = Field(min_length=1)
    """The replica working on the record."""
    until: UtcTime
    """The claim lapses then: a replica that died (kill -9) holds nothing for longer."""


class FollowUp(_Record):
    version: Literal[1] = 1
    kind: targets.WorkloadKind
    namespace: str = Field(min_length=1)
    name: str = Field(min_length=1)
    uid: str | None = None
    """The workload's uid when the record began: another uid under the same name is another workload."""
    incident: str = Field(min_length=1)
    """The alert occurrence whose mitigation is followed (threads notices, names the ledger entry)."""
    playbook: str
    action: settings.Action
    acted_at: UtcTime
    thread: str | None = None
    container: str | None = None
    """The alerted container (verdicts look at it; None: every container)."""
    horizons: tuple[Horizon, ...] = ()
    restarts: dict[str, int] = Field(default_factory=dict)
    """pod uid/container → restartCount at the last look, so "restarts not increasing" survives replicas."""
    verification: Verification | None = None
    schedule: Schedule | None = None
    claim: Claim | None = None
    confirmed: bool = True
    """False from just before the mitigation's write until it is seen written: a replica that finds it so
    after the writer's claim lapsed confirms it from the workload's ledger, or drops it."""
    ended: EndReason | None = None
    ended_detail: str | None = None

    @property
    def target(self) -> targets.Target:
        return targets.Target(kind=self.kind, namespace=self.namespace, name=self.name)

    @pydantic.model_validator(mode="after")
    def _horizons_in_order(self) -> FollowUp:
        due = [h.due_at for h in self.horizons]
        if due != sorted(due):
            raise ValueError("horizons must be in the order they fall due")
        return self


def horizon_label(seconds: float) -> str:
    """A horizon as people say it: "1h", "48h", "90m", "30s"."""
    whole = round(seconds)
    if whole >= 3600 and whole % 3600 == 0:
        return f"{whole // 3600}h"
    if whole >= 60 and whole % 60 == 0:
        return f"{whole // 60}m"
    return f"{seconds:g}s"


def record_name(target: targets.Target) -> str:
    """The Lease name for a workload: deterministic (replicas creating it race onto one object) and
    always a valid name however long the workload's name is."""
    digest = hashlib.sha256(target.key.encode()).hexdigest()[:20]
    return f"oom-responder-follow-{digest}"


def decision_outcome(kind: VerdictKind) -> decisions.Outcome:
    """The outcome a verdict is counted and reported as."""
    if kind is VerdictKind.STABLE:
        return decisions.Outcome.DONE
    if kind is VerdictKind.UNKNOWN:
        return decisions.Outcome.SKIPPED
    return decisions.Outcome.FAILED
