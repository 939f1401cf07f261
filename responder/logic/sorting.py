"""Sorting a webhook payload's alerts: normalize → deduplicate → refuse → route, one verdict per alert. Pure.

Stage: receive (decisions only). The webhook (`responder.web.receiving`) queues what this routes, and
`oom-responder plan` explains it; both walk a payload the same way because both call this. Whether an
occurrence was seen before is the caller's to say (`seen`): the receiver asks its deduplicator, `plan`
nothing. It reads no clock and no cluster.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from typing import NamedTuple

from responder.logic import deduplicating, normalizing, routing
from responder.models import alerts, decisions, settings

__all__ = ["Sorted", "Verdict", "sort_payload"]


class Verdict(enum.StrEnum):
    UNMAPPED = "unmapped"
    """The alert's name maps to no kind (alerts.names)."""
    DUPLICATE = "duplicate"
    """The same occurrence earlier in this payload, or seen before."""
    REFUSED = "refused"
    """Refused before any API request (a name Kubernetes would not accept, a namespace not served)."""
    UNROUTED = "unrouted"
    """No playbook answers this kind and labels."""
    ROUTED = "routed"


class Sorted(NamedTuple):
    """One alert's verdict. A tuple, not a frozen dataclass: one is made for every alert a webhook carries,
    and a frozen dataclass sets each field through `object.__setattr__`, which cost several times more."""

    verdict: Verdict
    alert: alerts.Alert
    event: alerts.AlertEvent | None = None
    """None when UNMAPPED."""
    key: str = ""
    """The occurrence key (deduplication)."""
    playbook: settings.Playbook | None = None
    """Set when ROUTED."""
    refusal: decisions.Decision | None = None
    """Set when REFUSED."""


def sort_payload(
    payload: alerts.WebhookPayload,
    *,
    settings: settings.Settings,
    seen: Callable[[str], bool] | None = None,
) -> Iterator[Sorted]:
    """One verdict per alert, in order; an occurrence is routed once per payload."""
    keys: set[str] = set()
    for alert in payload.alerts:
        event = normalizing.normalize(alert, payload=payload, settings=settings)
        if event is None:
            yield Sorted(Verdict.UNMAPPED, alert)
            continue
        key = deduplicating.occurrence_key(event)
        if key in keys or (seen is not None and seen(key)):
            yield Sorted(Verdict.DUPLICATE, alert, event, key)
            continue
        keys.add(key)
        refusal = normalizing.refuse(event, settings=settings)
        if refusal is not None:
            yield Sorted(Verdict.REFUSED, alert, event, key, refusal=refusal)
            continue
        playbook = routing.route(event, settings.playbooks)
        if playbook is None:
            yield Sorted(Verdict.UNROUTED, alert, event, key)
            continue
        yield Sorted(Verdict.ROUTED, alert, event, key, playbook)
