"""Handing off: on SIGTERM, the alerts this replica acknowledged but could not finish go to a live peer.

Stage: web edge (an HTTP client of our own webhook). A 202 tells Alertmanager the alert is taken care of, and
it will not send it again before `repeat_interval` (hours): what is still queued when the shutdown grace period
runs out must not die with the pod. It is posted, as the Alertmanager webhook it came in as, to
`server.handoff_url`: the Service in front of every replica. The Service may route the post back to this
replica, which answers 503 while shutting down; the post is retried until a peer answers 202 or
`server.handoff_timeout_seconds` is up. The peer treats the alerts as any delivery: deduplicated by occurrence
(an HA Alertmanager may have sent them to it already) and acted on at most once, because every write carries
its ledger entry under a resourceVersion precondition, so an item cancelled after its write is found done.
It decides nothing about the alerts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

import aiohttp

from responder.models import alerts, work

__all__ = ["BATCH", "HANDOFF_HEADER", "HandOff", "hand_off", "payload_for"]

logger = logging.getLogger(__name__)

HANDOFF_HEADER = "X-Oom-Responder-Handoff"
"""Names the replica that handed the alerts off (logged by the receiver)."""
BATCH = 100
"""Alerts per post: a peer queues a webhook all or nothing, so a smaller batch fits a busier queue."""
_RETRY_SECONDS = 0.25


@dataclasses.dataclass
class HandOff:
    """What became of the alerts that were left."""

    handed_off: int = 0
    lost: int = 0
    refusals: list[str] = dataclasses.field(default_factory=list)
    """The last answer or error per batch that could not be handed off."""


def _alert(event: alerts.AlertEvent) -> dict[str, Any]:
    return {
        "status": event.status.value,
        "labels": dict(event.labels),
        "annotations": dict(event.annotations),
        "startsAt": event.starts_at.isoformat(),
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": event.generator_url,
        # The same fingerprint and startsAt: the same occurrence id on the peer, so it deduplicates.
        "fingerprint": event.fingerprint,
    }


def payload_for(items: Sequence[work.WorkItem], *, identity: str) -> dict[str, Any]:
    """The Alertmanager webhook (version 4) that carries `items` again."""
    firing = any(item.event.status is alerts.AlertStatus.FIRING for item in items)
    return {
        "version": "4",
        "groupKey": f"handoff:{identity}",
        "truncatedAlerts": 0,
        "status": "firing" if firing else "resolved",
        "receiver": "oom-responder-handoff",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": items[0].event.external_url if items else "",
        "alerts": [_alert(item.event) for item in items],
    }


async def hand_off(
    items: Sequence[work.WorkItem],
    *,
    url: str,
    authorization: str | None,
    identity: str,
    timeout_seconds: float,
) -> HandOff:
    """Post `items` to `url` until a peer takes each batch (202) or `timeout_seconds` is up."""
    result = HandOff()
    if not items:
        return result
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_seconds
    headers = {HANDOFF_HEADER: identity}
    if authorization is not None:
        headers["Authorization"] = authorization
    # A fresh connection per attempt: a kept-alive one would keep reaching the same replica (this one).
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        for start in range(0, len(items), BATCH):
            batch = items[start : start + BATCH]
            payload = payload_for(batch, identity=identity)
            last = "not tried: no time left"
            taken = False
            while (left := deadline - loop.time()) > 0:
                try:
                    async with session.post(
                        url, json=payload, headers=headers, timeout=aiohttp.ClientTimeout(total=left)
                    ) as response:
                        if response.status == 202:
                            taken = True
                            break
                        last = f"{response.status}: {(await response.text())[:200]}"
                        if response.status < 500:
                            break  # refused for good (auth, schema): retrying cannot help
                except (aiohttp.ClientError, TimeoutError) as e:
                    last = f"{type(e).__name__}: {e}"
                await asyncio.sleep(min(_RETRY_SECONDS, max(0.0, deadline - loop.time())))
            if taken:
                result.handed_off += len(batch)
            else:
                result.lost += len(batch)
                result.refusals.append(last)
    return result
