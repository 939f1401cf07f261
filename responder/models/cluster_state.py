"""Cluster-wide guardrail state and the per-target snapshot the guard decides on. Data only.

`ClusterState` is what one ConfigMap in the service's namespace holds (the global budget, the blast-radius
window, the breaker and the pause switch); `responder.kube.state` reads and writes it by compare-and-swap and
`responder.logic.guarding` computes every change to it. Nothing here does I/O or reads the clock.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping, Sequence

import pydantic
from pydantic import Field

from responder.models import actions, ledgers

__all__ = [
    "DATA_KEY",
    "ENABLED_ANNOTATION",
    "MAX_MEMORY_ANNOTATION",
    "MAX_REPLICAS_ANNOTATION",
    "MAX_STATE_BYTES",
    "MAX_TRACKED_WORKLOADS",
    "BreakerTransition",
    "ClusterState",
    "TargetSnapshot",
]

DATA_KEY = "state.json"
"""Key in the ConfigMap's `data` holding the JSON of `ClusterState`."""

ENABLED_ANNOTATION = "oom-responder.io/enabled"
MAX_MEMORY_ANNOTATION = actions.MAX_MEMORY_ANNOTATION
MAX_REPLICAS_ANNOTATION = actions.MAX_REPLICAS_ANNOTATION

MAX_STATE_BYTES = 512 * 1024
"""Largest state object parsed: the blast-radius window of `MAX_TRACKED_WORKLOADS` takes about 200 KiB."""

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

    # Hand-edited or damaged objects must not slip through: times must carry a zone (a naive one cannot be
    # compared with the clock: TypeError on every mutating alert), numbers must be finite (NaN tokens refill
    # the budget: every comparison with NaN is false).
    model_config = pydantic.ConfigDict(frozen=True, extra="ignore", allow_inf_nan=False)

    budget_tokens: float | None = Field(None, ge=0)
    """Mutations left in the global token bucket; None means never used, i.e. a full bucket."""
    budget_refilled_at: pydantic.AwareDatetime | None = None
    """When `budget_tokens` was last brought up to date."""
    workloads: dict[str, pydantic.AwareDatetime] = Field(default_factory=dict)
    """Blast-radius window: distinct workload keys (namespace/Kind/name) alerting → when first seen."""
    last_new_workload_at: pydantic.AwareDatetime | None = None
    """When a workload not already in the window last started alerting (the breaker's quiet period runs
    from here)."""
    breaker_open: bool = False
    """While open, no replica mutates anything."""
    breaker_since: pydantic.AwareDatetime | None = None
    """When the breaker last opened or closed."""
    breaker_close_unannounced: bool = False
    """`oom-responder resume` closed an open breaker and no replica has said so yet: the next one that counts
    an alerting workload announces it (once: the flag is cleared in the same compare-and-swap)."""
    paused: bool = False
    """Set by `oom-responder pause`: no replica mutates anything until `oom-responder resume`."""
    paused_by: str | None = None
    """Who paused or resumed last."""
    paused_at: pydantic.AwareDatetime | None = None
    """When the switch was last flipped."""

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, raw: str | None) -> ClusterState:
        """Parse the ConfigMap's data; never raises. A damaged object reads as paused, and `paused_by` says
        what is wrong with it (every refusal for the pause quotes it): an operator must look and
        `oom-responder resume` before any replica writes again, rather than every guardrail silently resetting
        to empty. The size is checked before parsing."""
        if not raw:
            return cls()
        size = len(raw.encode("utf-8", "surrogatepass"))
        if size > MAX_STATE_BYTES:
            return cls._unreadable(f"{size} bytes, over the {MAX_STATE_BYTES} it can reach")
        try:
            return cls.model_validate_json(raw)
        except pydantic.ValidationError as e:
            error = e.errors(include_url=False)[0]
            where = ".".join(str(part) for part in error["loc"])
            return cls._unreadable(f"{f'{where}: ' if where else ''}{error['msg'][:200]}")

    @classmethod
    def _unreadable(cls, why: str) -> ClusterState:
        return cls(paused=True, paused_by=f"the service: the state object ({DATA_KEY}) is unreadable: {why}")


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
    ledger_problem: str | None = None
    """Why the ledger annotation cannot be read (then `ledger` is empty): the workload counts as "cap
    reached", never as a clean slate."""

    @classmethod
    def from_annotations(
        cls, *, namespace: str, annotations: Mapping[str, str] | None, own_namespace: str
    ) -> TargetSnapshot:
        """Build the snapshot from the workload's annotations, the ledger included."""
        annotations = dict(annotations or {})
        ledger = ledgers.read(annotations.get(ledgers.ANNOTATION))
        return cls(
            namespace=namespace,
            annotations=annotations,
            ledger=list(ledger.entries),
            own_namespace=own_namespace,
            ledger_problem=ledger.problem,
        )
