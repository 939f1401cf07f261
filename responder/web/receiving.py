"""Receiving: the `POST /webhook` endpoint that turns an Alertmanager notification into queued work.

It checks the request (content type 415, size 413, JSON 400, schema 422), normalizes, deduplicates and routes
every alert, and offers the resulting work items to the queue all at once. It answers 202 only once they are
queued, and 503 when the queue is full or the service is shutting down: Alertmanager retries 5xx and drops
alerts on 4xx, so nothing it was told we accepted may be lost, and nothing is marked seen before it is queued.
A queue that is already full, or a shutdown, is answered before the body is even read: a storm of retries then
costs no parsing. It logs the webhooks with their counts, batched into one line per up to a hundred webhooks
(the same group and counts listed once, with how many), never a line per alert: the ingest path is CPU-bound.
It must not plan, guard or touch the cluster: that happens later, in the queue's handler.
"""

from __future__ import annotations

import asyncio
import codecs
import dataclasses
import datetime
import json
import logging
import re
from collections.abc import Callable

import prometheus_client
import pydantic
from aiohttp import web

from responder import config, logs
from responder import metrics as metrics_mod
from responder.engine import queueing
from responder.logic import deduplicating, routing, sorting
from responder.models import alerts, decisions, settings, work
from responder.web import middlewares

__all__ = ["Counts", "Receiver"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Counts:
    """The 202 body: what happened to each alert of the notification."""

    accepted: int = 0
    """Firing alerts queued for a playbook."""
    duplicates: int = 0
    """Occurrences already queued before (a repeat notification or another HA peer), or twice in this one."""
    resolved: int = 0
    """Resolved alerts queued for notifications only."""
    ignored: int = 0
    """Alerts with an unmapped alert name, or that no playbook answers."""
    refused: int = 0
    """Alerts refused before any API request: a name Kubernetes would not accept, or a namespace outside
    `kubernetes.namespaces`. Each is logged with its reason."""


def _too_large(*, cap: int, size: int) -> web.HTTPRequestEntityTooLarge:
    body = {"error": "payload too large", "detail": [f"body exceeds {cap} bytes (server.max_body_bytes)"]}
    return web.HTTPRequestEntityTooLarge(
        max_size=cap, actual_size=size, text=json.dumps(body), content_type="application/json"
    )


# serde-style parser messages end with the position: "EOF while parsing a value at line 1 column 16".
_POSITION = re.compile(r"^(?P<msg>.*) at line (?P<line>\d+) column (?P<column>\d+)$")
_TOO_DEEP = "recursion limit exceeded"
_MAX_DEPTH = 200
"""pydantic-core's JSON parser refuses deeper nesting (its fixed recursion limit); an Alertmanager payload
is four levels deep."""


def _malformed_json_detail(body: bytes, error: pydantic.ValidationError) -> list[str]:
    """Where the JSON is broken, as `line L column C: message`, the way Python's own parser reports it.

    Only for bodies already refused: the stdlib parser is run again to name the position in the terms (and
    1-based columns) this endpoint has always answered with; the Rust parser's message is the fallback. A body
    nested too deep is named as such straight away: the stdlib parser recurses once per level and would raise
    RecursionError (a 500) on the very bodies that are refused for their depth.
    """
    ctx = error.errors(include_url=False)[0].get("ctx") or {}
    message = str(ctx.get("error", "invalid JSON"))
    match = _POSITION.match(message)
    if match is not None and match["msg"] == _TOO_DEEP:
        return [f"line {match['line']} column {match['column']}: nested deeper than {_MAX_DEPTH} levels"]
    try:
        json.loads(body)
    except json.JSONDecodeError as e:
        return [f"line {e.lineno} column {e.colno}: {e.msg}"]
    except (ValueError, RecursionError) as e:  # undecodable bytes; depth the Rust parser did not object to
        return [str(e)]
    if match is None:
        return [message]
    return [f"line {match['line']} column {match['column']}: {match['msg']}"]


_BODIES_KEPT = 1024
"""Distinct 202 bodies remembered (the counts of a webhook of up to ~a dozen alerts, in any mix)."""


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class Receiver:
    """The webhook handler with everything it needs passed in."""

    def __init__(
        self,
        *,
        settings: settings.Settings,
        metrics: metrics_mod.Metrics,
        queue: queueing.KeyedQueue,
        deduplicator: deduplicating.Deduplicator,
        is_shutting_down: Callable[[], bool],
        now: Callable[[], datetime.datetime] = _utc_now,
        on_truncated: Callable[[int], None] | None = None,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._queue = queue
        self._dedup = deduplicator
        self._is_shutting_down = is_shutting_down
        self._now = now
        self._on_truncated = on_truncated
        """Told how many alerts Alertmanager left out of a notification, so the next notice can say so."""
        self._received: dict[tuple[str, alerts.AlertStatus], prometheus_client.Counter] = {}
        self._bodies: dict[tuple[int, ...], bytes] = {}
        """`alerts_received` children by (alert name or "other", status): a bounded set, looked up once."""
        self._accepted_lines = logs.TalliedBatch(
            logger, "webhooks accepted", field="webhooks", debug_message="webhook accepted"
        )
        """The webhooks with their counts, a line per batch (a line per webhook was a fifth of the CPU of a
        1-alert webhook), the same group and counts listed once with how many webhooks had them; each
        webhook also on a line of its own at DEBUG."""

    def flush_log(self) -> None:
        """Write the webhooks accepted since the last line (at shutdown)."""
        self._accepted_lines.flush()

    async def handle(self, request: web.Request) -> web.Response:
        if request.content_type != "application/json":
            middlewares.raise_json_error(
                web.HTTPUnsupportedMediaType,
                "unsupported content type",
                [f"Content-Type is {request.content_type!r}; want 'application/json'"],
            )
        cap = self._settings.server.max_body_bytes
        if request.content_length is not None and request.content_length > cap:
            raise _too_large(cap=cap, size=request.content_length)
        self._refuse_when_overloaded()
        body = await self._read_body(request, cap=cap)
        # Python's json module accepted a UTF-8 byte order mark; pydantic-core's parser does not.
        body = body.removeprefix(codecs.BOM_UTF8)
        try:
            # One pass in pydantic-core (Rust) for parsing and validation: most of the cost of a webhook.
            payload = alerts.WebhookPayload.model_validate_json(body)
        except pydantic.ValidationError as e:
            if e.errors(include_url=False)[0]["type"] == "json_invalid":
                middlewares.raise_json_error(
                    web.HTTPBadRequest, "malformed JSON", _malformed_json_detail(body, e)
                )
            middlewares.raise_json_error(
                web.HTTPUnprocessableEntity, "not an Alertmanager webhook payload", config.describe_errors(e)
            )
        # The shutdown may have begun while the body was read.
        if self._is_shutting_down():
            middlewares.raise_json_error(
                web.HTTPServiceUnavailable, "shutting down", ["retry on another replica"]
            )
        counts = self.accept(payload)
        return web.Response(
            body=self._body_of(counts), status=202, content_type="application/json", charset="utf-8"
        )

    def _body_of(self, counts: Counts) -> bytes:
        """The 202 body, encoded once per distinct set of counts (most webhooks repeat a few)."""
        values = (counts.accepted, counts.duplicates, counts.resolved, counts.ignored, counts.refused)
        body = self._bodies.get(values)
        if body is None:
            body = json.dumps(vars(counts)).encode()
            if len(self._bodies) < _BODIES_KEPT:
                self._bodies[values] = body
        return body

    def _refuse_when_overloaded(self) -> None:
        """503 before the body is read when nothing could be queued anyway.

        A queue with some room left is not refused here: whether the whole group fits is `offer()`'s call, once
        the payload is known (a webhook is queued all or nothing).
        """
        if self._is_shutting_down() or self._queue.closed:
            middlewares.raise_json_error(
                web.HTTPServiceUnavailable, "shutting down", ["retry on another replica"]
            )
        pending, max_pending = self._queue.pending, self._queue.max_pending
        if pending >= max_pending:
            middlewares.raise_json_error(
                web.HTTPServiceUnavailable,
                "queue full",
                [f"queue full: {pending} of {max_pending} alerts pending", "Alertmanager will retry"],
            )

    async def _read_body(self, request: web.Request, *, cap: int) -> bytes:
        # Content-Length may be absent (chunked) or wrong: enforce the cap while reading, never past cap + 1.
        # The cap counts decoded bytes, so a small compressed body cannot expand past it either.
        content = request.content
        if content.is_eof() and content.exception() is None:
            # The whole body came with the head (any webhook of ordinary size): nothing to wait for, so no
            # timer to arm and cancel.
            body = content.read_nowait(cap + 1)
            if len(body) > cap:
                raise _too_large(cap=cap, size=len(body))
            return body
        parts: list[bytes] = []
        size = 0
        timeout = self._settings.server.body_timeout_seconds
        try:
            # A client trickling its body would otherwise hold a connection (and a file descriptor) for ever.
            async with asyncio.timeout(timeout):
                while True:
                    chunk = await request.content.read(cap + 1 - size)
                    if not chunk:
                        break
                    parts.append(chunk)
                    size += len(chunk)
                    if size > cap:
                        raise _too_large(cap=cap, size=size)
        except TimeoutError:
            middlewares.raise_json_error(
                web.HTTPRequestTimeout,
                "request body too slow",
                [f"the body was not complete within {timeout:g} s (server.body_timeout_seconds)"],
            )
        except web.RequestPayloadError as e:
            # A Content-Encoding the body does not match (gzip announced, plain JSON sent), or broken chunking.
            encoding = request.headers.get("Content-Encoding")
            middlewares.raise_json_error(
                web.HTTPBadRequest,
                "undecodable body",
                [f"Content-Encoding: {encoding}: the body does not decode" if encoding else str(e)],
            )
        return b"".join(parts)

    def accept(self, payload: alerts.WebhookPayload) -> Counts:
        """Queue what the payload asks for, all or nothing; raise a JSON 503 when the queue refuses.

        Synchronous on purpose: no other request can run between the duplicate check, the offer and the
        marking, so two deliveries of the same occurrence cannot both be queued.
        """
        counts = Counts()
        items: list[work.WorkItem] = []
        keys: list[str] = []
        refusals: list[tuple[alerts.AlertEvent, decisions.Decision]] = []
        received_at = self._now()
        for one in sorting.sort_payload(payload, settings=self._settings, seen=self._dedup.is_seen):
            if one.verdict is sorting.Verdict.DUPLICATE:
                counts.duplicates += 1
                continue
            if one.verdict is sorting.Verdict.REFUSED and one.event is not None and one.refusal is not None:
                # Remembered like a queued one: its repeats are duplicates, not a refusal logged every time.
                refusals.append((one.event, one.refusal))
                keys.append(one.key)
                counts.refused += 1
                continue
            if one.event is None or one.playbook is None:
                # Unmapped, or no playbook answers it (a resolved alert no playbook answers had nothing done
                # when it fired: nothing to report).
                counts.ignored += 1
                continue
            event = one.event
            resolved = event.status is alerts.AlertStatus.RESOLVED
            items.append(
                work.WorkItem(
                    event=event,
                    playbook=None if resolved else one.playbook,
                    received_at=received_at,
                    queue_key=routing.queue_key(event, settings=self._settings.alerts),
                )
            )
            keys.append(one.key)
            if resolved:
                counts.resolved += 1
            else:
                counts.accepted += 1
        try:
            self._queue.offer(items)
        except queueing.QueueClosed as e:
            raise middlewares.json_error(web.HTTPServiceUnavailable, "shutting down", [str(e)]) from e
        except queueing.QueueFull as e:
            raise middlewares.json_error(
                web.HTTPServiceUnavailable, "queue full", [str(e), "Alertmanager will retry"]
            ) from e
        self._dedup.mark_seen(keys)
        self._count(payload, counts)
        if payload.truncated_alerts:
            # Alertmanager cut the group at the receiver's max_alerts: those alerts never arrive here at all.
            self._metrics.alerts_truncated.inc(payload.truncated_alerts)
            logger.warning(
                "Alertmanager left %d alerts out of this notification (truncatedAlerts): they were not received",
                payload.truncated_alerts,
                extra={"group_key": payload.group_key, "truncated_alerts": payload.truncated_alerts},
            )
            if self._on_truncated is not None:
                self._on_truncated(payload.truncated_alerts)
        for event, refusal in refusals:
            self._metrics.alerts_refused.labels(reason=refusal.reason.value).inc()
            logger.warning(
                "alert refused: %s",
                refusal.detail,
                extra={
                    "occurrence_id": event.occurrence_id,
                    "alertname": event.alertname,
                    "decision": "refused",
                    "reason": refusal.reason.value,
                },
            )
        # One entry per webhook, batched (see __init__): a line per alert was a fifth of the CPU of a large
        # group. Which occurrences were queued is there at DEBUG; what is decided about each is logged where
        # it is decided.
        values = vars(counts)
        self._accepted_lines.add_tallied(
            (payload.group_key, payload.receiver, *values.values()),
            # Flat ints: dataclasses.asdict's deep copy would cost a fifth of the entry.
            {"group_key": payload.group_key, "receiver": payload.receiver, **values},
        )
        if items and logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "alerts queued",
                extra={
                    "group_key": payload.group_key,
                    "occurrence_ids": [item.event.occurrence_id for item in items],
                },
            )
        return counts

    def _count(self, payload: alerts.WebhookPayload, counts: Counts) -> None:
        names = self._settings.alerts.names
        # A plain dict: making a collections.Counter costs more than counting a small webhook's alerts.
        pairs: dict[tuple[str, alerts.AlertStatus], int] = {}
        for alert in payload.alerts:
            # Unmapped names are folded into "other": any sender could otherwise grow the label set at will.
            alertname = alert.labels.get("alertname", "")
            pair = (alertname if alertname in names else "other", alert.status)
            pairs[pair] = pairs.get(pair, 0) + 1
        # One child per distinct pair and webhook, found once per process (nor an enum's `.value` per alert).
        for pair, n in pairs.items():
            child = self._received.get(pair)
            if child is None:
                alertname, status = pair
                child = self._received[pair] = self._metrics.alerts_received.labels(
                    alertname=alertname, status=status.value
                )
            child.inc(n)
        if counts.duplicates:
            self._metrics.alerts_deduplicated.inc(counts.duplicates)
