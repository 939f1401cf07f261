"""A generic JSON webhook carrying the notice model, for chat and paging tools other than Slack.

The edge to any HTTP receiver. Body (version 1), one POST per message, `Content-Type: application/json`:

    {"version": "1", "digest": false, "notices": [{"kind": "action", "at": "...", "incident": "...",
      "summary": "...", "title": "...", "alert": {...} | null, "target": {...} | null, "playbook": ...,
      "action": ..., "outcome": ..., "reason": ..., "guardrail": ..., "from": ..., "to": ..., "dry_run": ...,
      "detail": ..., "truncated_alerts": N, "silence_url": ..., "log_lines": [...], "silence_id": ...}]}

`log_lines` are the matching lines of the OOM-killed container's previous log (redacted, capped);
`silence_id` is the Alertmanager silence the service created (or expired) for the incident.

`digest` is true when the outbox batched a storm into one POST. Field values are the same enum values as in
metrics, ledgers and Events. The URL is a secret (it often embeds a token): it never appears in logs or
errors. It must not queue, retry or sleep (the outbox does).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import aiohttp

from responder.models import notices
from responder.notifiers import blocks, outboxes

__all__ = ["VERSION", "JsonWebhook", "body", "notice_to_json"]

VERSION = "1"


def notice_to_json(notice: notices.Notice) -> dict[str, Any]:
    """The notice as plain JSON types. Pure."""
    event = notice.event
    alert: dict[str, Any] | None = None
    if event is not None:
        alert = {
            "name": event.alertname,
            "kind": event.kind.value,
            "status": event.status.value,
            "fingerprint": event.fingerprint,
            "starts_at": event.starts_at.isoformat(),
            "occurrence": event.occurrence_id,
            "namespace": event.namespace,
            "pod": event.pod,
            "container": event.container,
            "severity": event.severity,
            "labels": dict(event.labels),
            "annotations": dict(event.annotations),
            "generator_url": event.generator_url or None,
            "runbook_url": event.annotations.get("runbook_url"),
        }
    target = (
        {"kind": notice.target.kind.value, "namespace": notice.target.namespace, "name": notice.target.name}
        if notice.target is not None
        else None
    )
    return {
        "kind": notice.kind.value,
        "at": notice.at.isoformat(),
        "incident": notice.incident,
        "title": blocks.title(notice),
        "summary": notice.summary,
        "alert": alert,
        "target": target,
        "playbook": notice.playbook,
        "action": notice.action.value if notice.action else None,
        "outcome": notice.outcome.value if notice.outcome else None,
        "reason": notice.reason.value if notice.reason else None,
        "guardrail": notice.guardrail.value if notice.guardrail else None,
        "from": notice.from_value,
        "to": notice.to_value,
        "dry_run": notice.dry_run,
        "detail": notice.detail,
        "truncated_alerts": notice.truncated_alerts,
        "silence_url": blocks.silence_url(event.external_url, event.labels) if event is not None else None,
        "log_lines": list(notice.log_lines),
        "silence_id": notice.silence_id,
    }


def body(batch: Sequence[notices.Notice], *, digest: bool) -> dict[str, Any]:
    """The JSON body of one POST. Pure."""
    return {"version": VERSION, "digest": digest, "notices": [notice_to_json(notice) for notice in batch]}


class JsonWebhook:
    """POSTs notices as JSON to one URL; a 2xx answer is success."""

    def __init__(self, *, name: str, url: str, timeout_seconds: float = 10.0) -> None:
        self._name = name
        self._url = url
        self._timeout_seconds = timeout_seconds
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"JsonWebhook(name={self._name!r})"

    @property
    def name(self) -> str:
        return self._name

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        self._session = None

    async def deliver(self, batch: Sequence[notices.Notice], *, digest: bool) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout_seconds))
        try:
            async with (
                asyncio.timeout(self._timeout_seconds),
                self._session.post(self._url, json=body(batch, digest=digest)) as response,
            ):
                status = response.status
                retry_after = response.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            # The class name only: the exception text may contain the URL.
            if isinstance(e, TimeoutError):
                raise outboxes.DeliveryError("timed out", retriable=True) from None
            raise outboxes.DeliveryError(f"connection failed ({type(e).__name__})", retriable=True) from None
        if 200 <= status < 300:
            return
        if status == 429:
            try:
                wait = float(retry_after) if retry_after is not None else 1.0
            except ValueError:
                wait = 1.0
            raise outboxes.DeliveryError("rate limited (429)", retriable=True, retry_after_seconds=wait)
        raise outboxes.DeliveryError(f"HTTP {status}", retriable=status >= 500 or status == 408)
