"""The aiohttp application: routes, middlewares, and the lifecycle of the work queue.

`make_app` wires what it is given (settings, metrics, the queue's handler, a readiness probe) and owns the
queue and the deduplication cache. Shutdown happens in the order the runbook of any webhook receiver needs:
fail /readyz, answer new webhooks with 503, drain the queue within `server.shutdown_timeout_seconds`, cancel
what is left and hand it off to a live replica through `server.handoff_url` (the Service), stop. It must not
know what the handler does with the work.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from aiohttp import typedefs, web

from responder import metrics as metrics_mod
from responder.engine import queueing
from responder.logic import deduplicating
from responder.models import settings as settings_mod
from responder.web import auth, connections, handing_off, middlewares, receiving

__all__ = [
    "AUTHENTICATOR",
    "DEDUPLICATOR",
    "METRICS",
    "QUEUE",
    "SETTINGS",
    "STATE",
    "Readiness",
    "State",
    "begin_shutdown",
    "make_app",
]

logger = logging.getLogger(__name__)

Readiness = Callable[[], tuple[bool, Mapping[str, Any]]]
"""Whether the pipeline behind the queue can work, and details for /readyz (e.g. the cluster's state)."""


@dataclasses.dataclass
class State:
    shutting_down: bool = False
    drained: bool = False


SETTINGS = web.AppKey("settings", settings_mod.Settings)
METRICS = web.AppKey("metrics", metrics_mod.Metrics)
QUEUE = web.AppKey("queue", queueing.KeyedQueue)
DEDUPLICATOR = web.AppKey("deduplicator", deduplicating.Deduplicator)
AUTHENTICATOR = web.AppKey("authenticator", auth.Authenticator)
STATE = web.AppKey("state", State)
_READINESS: web.AppKey[Readiness] = web.AppKey("readiness")
_RECEIVER = web.AppKey("receiver", receiving.Receiver)


def make_app(
    *,
    settings: settings_mod.Settings,
    metrics: metrics_mod.Metrics,
    handler: queueing.Handler,
    readiness: Readiness,
    authenticator: auth.Authenticator | None = None,
    deduplicator: deduplicating.Deduplicator | None = None,
    connection_guard: connections.ConnectionGuard | None = None,
    on_truncated: Callable[[int], None] | None = None,
) -> web.Application:
    """The application; raises auth.AuthError when auth is required and its secret is missing.

    `authenticator` defaults to one built from `settings.auth` and the environment; `deduplicator` to a new
    one from `settings.dedup` (pass one in to share it with the handler, which may forget occurrences).
    `connection_guard` is the one the site listens through (`serve`); its middleware goes first.
    `on_truncated` is told how many alerts Alertmanager left out of a notification (for the next notice).
    """
    if authenticator is None:
        authenticator = auth.Authenticator.from_settings(settings.auth)
    connections.quiet_malformed_requests()
    app = web.Application(
        middlewares=[
            *([connection_guard.middleware] if connection_guard is not None else []),
            middlewares.error_middleware(metrics=metrics),
            middlewares.auth_middleware(authenticator=authenticator),
        ],
        # Our own reader enforces the cap on /webhook while streaming; this covers request.read() anywhere else.
        client_max_size=settings.server.max_body_bytes,
    )
    queue = queueing.KeyedQueue(
        handler=handler,
        max_pending=settings.queue.max_pending,
        workers=settings.queue.workers,
        metrics=metrics,
    )
    if deduplicator is None:
        deduplicator = deduplicating.Deduplicator.from_settings(settings.dedup)
    state = State()
    app[SETTINGS] = settings
    app[METRICS] = metrics
    app[QUEUE] = queue
    app[DEDUPLICATOR] = deduplicator
    app[AUTHENTICATOR] = authenticator
    app[STATE] = state
    app[_READINESS] = readiness
    receiver = receiving.Receiver(
        settings=settings,
        metrics=metrics,
        queue=queue,
        deduplicator=deduplicator,
        is_shutting_down=lambda: state.shutting_down,
        on_truncated=on_truncated,
    )
    app[_RECEIVER] = receiver
    app.router.add_post("/webhook", receiver.handle)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics_handler(metrics))
    app.cleanup_ctx.append(_run_queue)
    return app


def _metrics_handler(metrics: metrics_mod.Metrics) -> typedefs.Handler:
    try:
        from prometheus_client.aiohttp import make_aiohttp_handler  # noqa: PLC0415 - optional in old clients
    except ImportError:  # prometheus-client < 0.20
        import prometheus_client  # noqa: PLC0415

        async def fallback(request: web.Request) -> web.Response:
            return web.Response(
                body=prometheus_client.generate_latest(metrics.registry),
                headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST},
            )

        return fallback
    handler: typedefs.Handler = make_aiohttp_handler(metrics.registry)
    return handler


async def _run_queue(app: web.Application) -> AsyncIterator[None]:
    queue = app[QUEUE]
    queue.start()
    yield
    # Normally begin_shutdown() drained already, while the server still answered 503; this covers other exits.
    await begin_shutdown(app)


async def begin_shutdown(app: web.Application) -> None:
    """Fail /readyz and refuse webhooks (503), then drain the queue within the grace period. Idempotent."""
    state = app[STATE]
    state.shutting_down = True
    # No webhook is accepted from here on: the last ones accepted are logged before the drain's lines.
    app[_RECEIVER].flush_log()
    if state.drained:
        return
    server = app[SETTINGS].server
    timeout = server.shutdown_timeout_seconds
    queue = app[QUEUE]
    logger.info("draining the work queue", extra={"pending": queue.pending, "timeout_seconds": timeout})
    cancelled = await queue.drain(timeout)
    state.drained = True
    logger.info("work queue drained", extra={"cancelled": len(cancelled), "completed": queue.completed})
    if not cancelled:
        return
    # Each of these was acknowledged with a 202: Alertmanager will not send it again for hours.
    if server.handoff_url is None:
        logger.error(
            "acknowledged alerts lost at shutdown: set server.handoff_url so a live replica takes them over",
            extra={"lost": len(cancelled)},
        )
        app[METRICS].alerts_lost.inc(len(cancelled))
        return
    from responder.engine import processing  # noqa: PLC0415 - only needed at shutdown

    result = await handing_off.hand_off(
        cancelled,
        url=server.handoff_url,
        authorization=app[AUTHENTICATOR].authorization(),
        identity=processing.default_identity(app[SETTINGS]),
        timeout_seconds=server.handoff_timeout_seconds,
    )
    app[METRICS].alerts_handed_off.inc(result.handed_off)
    if result.lost:
        app[METRICS].alerts_lost.inc(result.lost)
        logger.error(
            "acknowledged alerts could not be handed off to a live replica: lost until Alertmanager repeats them",
            extra={"handed_off": result.handed_off, "lost": result.lost, "answers": result.refusals},
        )
    else:
        logger.info(
            "alerts left at shutdown handed off to a live replica",
            extra={"handed_off": result.handed_off, "url": server.handoff_url},
        )


async def _healthz(request: web.Request) -> web.Response:
    # Liveness: the event loop answers. Readiness is a separate question.
    return web.json_response({"alive": True})


async def _readyz(request: web.Request) -> web.Response:
    app = request.app
    state = app[STATE]
    ok, detail = app[_READINESS]()
    body: dict[str, Any] = {"ready": ok and not state.shutting_down, **detail}
    if state.shutting_down:
        body["shutting_down"] = True
    queue = app[QUEUE]
    body["queue"] = {"pending": queue.pending, "max_pending": queue.max_pending}
    return web.json_response(body, status=200 if body["ready"] else 503)
