"""Middlewares of the HTTP edge: JSON error bodies, request counting, logging refused webhooks and webhook
authentication.

They shape responses and refuse requests; they must not look inside alerts or decide anything about them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import NoReturn

import cachetools
import prometheus_client
from aiohttp import typedefs, web

from responder import metrics as metrics_mod
from responder.web import auth

__all__ = [
    "REJECTIONS_LOGGED",
    "REJECTION_LOG_SECONDS",
    "RejectionLog",
    "auth_middleware",
    "error_middleware",
    "json_error",
    "raise_json_error",
]

logger = logging.getLogger(__name__)

_JSON = "application/json"


def json_error(
    status_class: type[web.HTTPException],
    error: str,
    detail: Sequence[str] = (),
    *,
    headers: Mapping[str, str] | None = None,
) -> web.HTTPException:
    """An HTTP error whose body is `{"error": ..., "detail": [...]}`."""
    body = json.dumps({"error": error, "detail": list(detail)})
    return status_class(text=body, content_type=_JSON, headers=headers)


def _json_response(
    status: int, error: str, detail: Sequence[str] = (), *, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.json_response({"error": error, "detail": list(detail)}, status=status, headers=headers)


def raise_json_error(
    status_class: type[web.HTTPException], error: str, detail: Sequence[str] = ()
) -> NoReturn:
    raise json_error(status_class, error, detail)


REJECTIONS_LOGGED = frozenset({400, 401, 413, 415, 422})
"""Webhook refusals that mean the sender is misconfigured (token, size, content type, payload shape):
Alertmanager drops a 4xx for good, so the operator must be able to read why alerts do not arrive."""

REJECTION_LOG_SECONDS = 60.0
"""One log line per (status, sender) per this many seconds; the repeats in between are counted in the next."""


class RejectionLog:
    """Logs refused webhooks once per (status, sender) per window, with the sender's address and the reason,
    so a mistyped token shows up in the log without a line per Alertmanager retry."""

    def __init__(
        self, *, window_seconds: float = REJECTION_LOG_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.window_seconds = window_seconds
        self._clock = clock
        # (status, sender) → (when last logged, repeats since); bounded so many senders cannot grow it.
        self._seen: cachetools.LRUCache[tuple[int, str], tuple[float, int]] = cachetools.LRUCache(1024)

    def record(self, request: web.Request, error: web.HTTPException) -> None:
        sender = request.remote or "unknown"
        key = (error.status, sender)
        now = self._clock()
        logged_at, repeats = self._seen.get(key, (float("-inf"), 0))
        if now - logged_at < self.window_seconds:
            self._seen[key] = (logged_at, repeats + 1)
            return
        self._seen[key] = (now, 0)
        reason, detail = _reason(error)
        logger.warning(
            "webhook rejected",
            extra={
                "status": error.status,
                "sender": sender,
                "forwarded_for": request.headers.get("X-Forwarded-For", ""),
                "user_agent": request.headers.get("User-Agent", "")[:100],
                "reason": reason,
                "detail": detail[:5],
                "repeats_not_logged": repeats,
            },
        )


def _reason(error: web.HTTPException) -> tuple[str, list[str]]:
    try:
        body = json.loads(error.text or "")
    except ValueError:
        body = None
    if isinstance(body, dict):
        detail = body.get("detail")
        return str(body.get("error") or error.reason), [str(d)[:200] for d in detail or [] if d is not None]
    return (error.reason or "error").lower(), []


def error_middleware(
    *,
    metrics: metrics_mod.Metrics,
    counted_paths: Collection[str] = ("/webhook",),
    rejections: RejectionLog | None = None,
) -> typedefs.Middleware:
    """Render every error as JSON, count webhook answers by status code and log refused webhooks.

    aiohttp's own errors (404, 405, body too large) arrive as plain text; they are re-rendered. Anything else
    unexpected becomes a logged JSON 500, never a traceback page. CancelledError passes through untouched.
    Refusals in `REJECTIONS_LOGGED` are logged through `rejections` (rate-limited).
    """
    rejections = rejections or RejectionLog()
    # `webhook_requests` children by status code (a bounded set), found once: a lookup on every webhook
    # cost more than the count.
    by_status: dict[int, prometheus_client.Counter] = {}

    def count(status: int) -> None:
        child = by_status.get(status)
        if child is None:
            child = by_status[status] = metrics.webhook_requests.labels(code=str(status))
        child.inc()

    @web.middleware
    async def impl(request: web.Request, handler: typedefs.Handler) -> web.StreamResponse:
        counted = request.path in counted_paths
        try:
            response: web.StreamResponse = await handler(request)
        except web.HTTPException as e:
            if counted:
                count(e.status)
                if e.status in REJECTIONS_LOGGED:
                    rejections.record(request, e)
            if e.status < 400 or e.content_type == _JSON:
                raise
            # aiohttp's own errors (404, 405, 413 from request.read()) come as text: same status, JSON body.
            headers = {
                k: v for k, v in e.headers.items() if k.lower() not in ("content-type", "content-length")
            }
            return _json_response(e.status, (e.reason or "error").lower(), headers=headers)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("unexpected error answering %s %s", request.method, request.path)
            if counted:
                count(500)
            return _json_response(500, "internal error", ["see the service's log"])
        if counted:
            count(response.status)
        return response

    return impl


def auth_middleware(
    *, authenticator: auth.Authenticator, protected_paths: Collection[str] = ("/webhook",)
) -> typedefs.Middleware:
    """Refuse unauthenticated requests to the webhook with 401; probes and metrics stay open."""

    @web.middleware
    async def impl(request: web.Request, handler: typedefs.Handler) -> web.StreamResponse:
        if request.path in protected_paths and not authenticator.is_authorized(
            request.headers.get("Authorization")
        ):
            raise web.HTTPUnauthorized(
                text=json.dumps({"error": "unauthorized", "detail": [authenticator.challenge_hint]}),
                content_type=_JSON,
                headers={"WWW-Authenticate": authenticator.challenge},
            )
        return await handler(request)

    return impl
