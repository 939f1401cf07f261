"""A 202 survives the replica that gave it: on shutdown, what the queue could not finish is handed to a peer.

Covers: N alerts acknowledged by replica A, A shut down (as on SIGTERM) while most are still queued or
running: every one of the N is handled exactly once, by A or by its peer B, reached through a stand-in for the
Service that also routes to A (which refuses with 503 while shutting down, so the hand-off retries); the
counts are in `oom_responder_alerts_handed_off_total`. Without `server.handoff_url`, or with no live peer,
what is left is counted in `oom_responder_alerts_lost_total` and logged as an error. The hand-off payload is an
Alertmanager webhook that keeps each alert's occurrence id, so a peer that already had an alert deduplicates
it.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import test_utils, web
from prometheus_client import CollectorRegistry

from responder import metrics as metrics_mod
from responder.models import alerts, settings, work
from responder.web import app as app_mod
from responder.web import auth, handing_off
from tests.unit import payloads

TOKEN = "handoff-token"
N = 30

ServerFactory = Callable[..., Awaitable[test_utils.TestServer]]


class SlowHandler:
    """A queue handler that takes a while per alert and records the occurrences it finished."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.done: list[str] = []

    async def __call__(self, item: work.WorkItem) -> None:
        await asyncio.sleep(self.seconds)
        self.done.append(item.event.occurrence_id)


def _replica(handler: SlowHandler, **server: Any) -> web.Application:
    config = settings.Settings.model_validate(
        {
            "identity": "replica",
            "queue": {"workers": 2},
            "server": {"shutdown_timeout_seconds": 0.3, **server},
        }
    )
    return app_mod.make_app(
        settings=config,
        metrics=metrics_mod.Metrics(CollectorRegistry()),
        handler=handler,
        readiness=lambda: (True, {}),
        authenticator=auth.Authenticator(bearer_token=TOKEN),
    )


def _service(backends: list[str]) -> web.Application:
    """Round-robin over the replicas' endpoints, terminating ones included, as a Service may for a moment.

    `backends` may be filled in after the Service is started."""
    turns = itertools.count()

    async def forward(request: web.Request) -> web.Response:
        backend = backends[next(turns) % len(backends)]
        async with (
            aiohttp.ClientSession() as session,
            session.post(backend, data=await request.read(), headers=request.headers) as answer,
        ):
            return web.Response(
                status=answer.status, body=await answer.read(), content_type="application/json"
            )

    app = web.Application()
    app.router.add_post("/webhook", forward)
    return app


def _alerts() -> dict[str, Any]:
    return payloads.payload(
        *[payloads.alert("OOMKilled", pod=f"api-{n}", fingerprint=f"{n:016x}") for n in range(N)]
    )


def _metric(app: web.Application, name: str) -> float:
    return app[app_mod.METRICS].registry.get_sample_value(name) or 0.0


async def test_every_acknowledged_alert_is_handled_exactly_once_by_someone(
    aiohttp_server: ServerFactory,
) -> None:
    backends: list[str] = []
    service = await aiohttp_server(_service(backends))
    peer_handler = SlowHandler(0.0)
    peer = await aiohttp_server(_replica(peer_handler))
    dying_handler = SlowHandler(0.1)
    dying_app = _replica(dying_handler, handoff_url=str(service.make_url("/webhook")))
    dying = await aiohttp_server(dying_app)
    # The dying replica first, so that the hand-off's first attempt reaches it and is refused.
    backends += [str(dying.make_url("/webhook")), str(peer.make_url("/webhook"))]
    async with aiohttp.ClientSession() as session:
        answer = await session.post(
            dying.make_url("/webhook"), json=_alerts(), headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert answer.status == 202 and (await answer.json())["accepted"] == N
    await app_mod.begin_shutdown(dying_app)
    await peer.app[app_mod.QUEUE].wait_idle()
    handled = dying_handler.done + peer_handler.done
    assert sorted(handled) == sorted({f"{n:016x}@2024-05-01T10:00:00+00:00" for n in range(N)})
    assert len(handled) == N, "an alert was handled twice"
    assert dying_handler.done and peer_handler.done, "the test did not exercise a hand-off"
    assert _metric(dying_app, "oom_responder_alerts_handed_off_total") == len(peer_handler.done)
    assert _metric(dying_app, "oom_responder_alerts_lost_total") == 0
    refused = dying_app[app_mod.METRICS].registry.get_sample_value(
        "oom_responder_webhook_requests_total", {"code": "503"}
    )
    assert refused, "the Service never routed the hand-off back to the replica shutting down"


async def test_without_a_handoff_url_what_is_left_is_counted_as_lost(
    aiohttp_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    handler = SlowHandler(0.1)
    app = _replica(handler)
    server = await aiohttp_server(app)
    async with aiohttp.ClientSession() as session:
        answer = await session.post(
            server.make_url("/webhook"), json=_alerts(), headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert answer.status == 202
    with caplog.at_level(logging.ERROR, logger="responder.web.app"):
        await app_mod.begin_shutdown(app)
    lost = N - len(handler.done)
    assert lost > 0
    assert _metric(app, "oom_responder_alerts_lost_total") == lost
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "server.handoff_url" in record.getMessage()


async def test_with_no_live_peer_the_hand_off_gives_up_in_time_and_counts_the_loss(
    aiohttp_server: ServerFactory,
) -> None:
    handler = SlowHandler(0.1)
    app = _replica(handler, handoff_url="http://127.0.0.1:9/webhook", handoff_timeout_seconds=0.5)
    server = await aiohttp_server(app)
    async with aiohttp.ClientSession() as session:
        await session.post(
            server.make_url("/webhook"), json=_alerts(), headers={"Authorization": f"Bearer {TOKEN}"}
        )
    await asyncio.wait_for(app_mod.begin_shutdown(app), timeout=10)
    assert _metric(app, "oom_responder_alerts_lost_total") == N - len(handler.done)
    assert _metric(app, "oom_responder_alerts_handed_off_total") == 0


def test_the_hand_off_payload_keeps_each_occurrence() -> None:
    starts = datetime.datetime(2024, 5, 1, 10, tzinfo=datetime.UTC)
    event = alerts.AlertEvent(
        kind=settings.AlertKind.OOM_KILLED,
        alertname="OOMKilled",
        status=alerts.AlertStatus.FIRING,
        fingerprint="abc",
        starts_at=starts,
        namespace="shop",
        pod="api-1",
        container="app",
        severity=None,
        labels={"alertname": "OOMKilled", "namespace": "shop", "pod": "api-1"},
        annotations={"summary": "s"},
        generator_url="http://prometheus/graph",
        external_url="http://alertmanager",
    )
    item = work.WorkItem(event=event, playbook=None, received_at=starts, queue_key="shop/api-1")
    payload = alerts.WebhookPayload.model_validate(handing_off.payload_for([item], identity="pod-a"))
    [alert] = payload.alerts
    assert (alert.fingerprint, alert.starts_at, alert.labels) == ("abc", starts, event.labels)
    assert payload.group_key == "handoff:pod-a" and payload.external_url == "http://alertmanager"
