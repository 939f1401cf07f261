"""Cluster-wide guardrail state and the per-target snapshot the guard decides on. Data only.

`ClusterState` is what one ConfigMap in the service's namespace holds (the global budget, the blast-radius
window, the breaker and the pause switch); `responder.kube.state` reads and writes it by compare-and-swap and
`responder.logic.guarding` computes every change to it. Nothing here does I/O or reads the clock.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
from collections.abc import Mapping, Sequence

import pydantic
from pydantic import Field

from responder.models import ledgers

__all__ = [
    "DATA_KEY",
    "ENABLED_ANNOTATION",
    "MAX_MEMORY_ANNOTATION",
    "MAX_REPLICAS_ANNOTATION",
    "MAX_TRACKED_WORKLOADS",
    "BreakerTransition",
    "ClusterState",
    "TargetSnapshot",
]

DATA_KEY = "state.json"
"""Key in the ConfigMap's `data` holding the JSON of `ClusterState`."""

ENABLED_ANNOTATION = "oom-responder.io/enabled"
MAX_MEMORY_ANNOTATION = "oom-responder.io/max-memory"
MAX_REPLICAS_ANNOTATION = "oom-responder.io/max-replicas"

MAX_TRACKED_WORKLOADS = 2000
"""Bound on the blast-radius window kept in the ConfigMap (about 100 bytes each, far below the 1 MiB object
limit). Only the count above `max_workloads` and the time of the newest arrival matter, so forgetting the
oldest entries of a storm larger than this changes neither."""


class BreakerTransition(enum.StrEnum):
    """A change of the blast-radius breaker; compare-and-swap makes exactly one replica observe each."""

    OPENED = "opened"
    CLOSED = "closed"


class ClusterState(pydantic.BaseModel):
    """The cluster-wide guardrail state, shared by every replica. All times are timezone-aware UTC."""

    model_config = pydantic.ConfigDict(frozen=True, extra="ignore")

    budget_tokens: float | None = None
    """Mutations left in the global token bucket; None means never used, i.e. a full bucket."""
    budget_refilled_at: datetime.datetime | None = None
    """When `budget_tokens` was last brought up to date."""
    workloads: dict[str, datetime.datetime] = Field(default_factory=dict)
    """Blast-radius window: distinct workload keys (namespace/Kind/name) alerting → when first seen."""
    last_new_workload_at: datetime.datetime | None = None
    """When a workload not already in the window last started alerting (the breaker's quiet period runs
    from here)."""
    breaker_open: bool = False
    """While open, no replica mutates anything."""
    breaker_since: datetime.datetime | None = None
    """When the breaker last opened or closed."""
    paused: bool = False
    """Set by `oom-responder pause`: no replica mutates anything until `oom-responder resume`."""
    paused_by: str | None = None
    """Who paused or resumed last."""
    paused_at: datetime.datetime | None = None
    """When the switch was last flipped."""

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, raw: str | None) -> ClusterState:
        """Parse the ConfigMap's data. A damaged object reads as paused: an operator must look before any
        replica writes again, rather than every guardrail silently resetting to empty."""
        if not raw:
            return cls()
        try:
            return cls.model_validate_json(raw)
        except pydantic.ValidationError:
            return cls(paused=True, paused_by="unreadable state object")


@dataclasses.dataclass(frozen=True, slots=True)
class TargetSnapshot:
    """What the guard needs to know about the target workload, read from the cluster just before guarding."""

    namespace: str
    annotations: Mapping[str, str]
    """The top-level workload's metadata.annotations."""
    ledger: Sequence[ledgers.LedgerEntry]
    """Actions already taken on the workload (its `oom-responder.io/ledger` annotation)."""
    own_namespace: str
    """The namespace the service runs in (excluded unless configured)."""

    @classmethod
    def from_annotations(
        cls, *, namespace: str, annotations: Mapping[str, str] | None, own_namespace: str
    ) -> TargetSnapshot:
        """Build the snapshot from the workload's annotations, the ledger included."""
        annotations = dict(annotations or {})
        return cls(
            namespace=namespace,
            annotations=annotations,
            ledger=ledgers.load(annotations.get(ledgers.ANNOTATION)),
            own_namespace=own_namespace,
        )
