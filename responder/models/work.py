"""What the webhook hands to the work queue. Data only."""

from __future__ import annotations

import dataclasses
import datetime

from responder.models import alerts, settings

__all__ = ["WorkItem"]


@dataclasses.dataclass(frozen=True, slots=True)
class WorkItem:
    event: alerts.AlertEvent
    playbook: settings.Playbook | None
    """The routed playbook; None for a resolved alert (notifications only, never a mitigation)."""
    received_at: datetime.datetime
    queue_key: str
    """Serialization key at ingest, before the owner is known: namespace plus workload label or pod name.
    Processing also locks on the resolved top-level workload."""
