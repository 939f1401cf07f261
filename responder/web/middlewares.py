"""Middlewares of the HTTP edge: JSON error bodies, request counting and webhook authentication.

They shape responses and refuse requests; they must not look inside alerts or decide anything about them.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Collection, Mapping, Sequence
from typing import NoReturn

from aiohttp import typedefs, web

from responder import metrics as metrics_mod
from responder.web import auth

__all__ = ["auth_middleware", "error_middleware", "json_error", "raise_json_error"]

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


def error_middleware(
    *, metrics: metrics_mod.Metrics, counted_paths: Collection[str] = ("/webhook",)
) -> typedefs.Middleware:
    """Render every error as JSON and count webhook answers by status code.

    aiohttp's own errors (404, 405, body too large) arrive as plain text; they are re-rendered. Anything else
    unexpected becomes a logged JSON 500, never a traceback page. CancelledError passes through untouched.
    """

    @web.middleware
    async def impl(request: web.Request, handler: typedefs.Handler) -> web.StreamResponse:
        counted = request.path in counted_paths
        try:
            response: web.StreamResponse = await handler(request)
        except web.HTTPException as e:
            if counted:
                metrics.webhook_requests.labels(code=str(e.status)).inc()
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
                metrics.webhook_requests.labels(code="500").inc()
            return _json_response(500, "internal error", ["see the service's log"])
        if counted:
            metrics.webhook_requests.labels(code=str(response.status)).inc()
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
