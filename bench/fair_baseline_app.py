"""The fair baseline: the least a webhook receiver that validates must do, in plain aiohttp and pydantic.

It checks the bearer token (constant time), the content type and the body size, validates the Alertmanager v4
payload in one `model_validate_json` pass (its own model, written as a peer would), puts every alert on a
bounded queue drained by one task, and answers 202, or 503 when the queue is full. No normalization,
deduplication, routing, metrics or logging: the gap between it and oom-responder is what those cost.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import hmac
import sys
from collections.abc import AsyncIterator
from typing import Literal

import pydantic
from aiohttp import web


class Alert(pydantic.BaseModel):
    status: str
    labels: dict[str, str]
    annotations: dict[str, str] = {}
    startsAt: datetime.datetime
    endsAt: datetime.datetime | None = None
    generatorURL: str = ""
    fingerprint: str = ""


class Payload(pydantic.BaseModel):
    version: Literal["4"]
    groupKey: str
    status: str
    receiver: str
    groupLabels: dict[str, str] = {}
    commonLabels: dict[str, str] = {}
    commonAnnotations: dict[str, str] = {}
    externalURL: str = ""
    alerts: list[Alert]


QUEUE: web.AppKey[asyncio.Queue[Alert]] = web.AppKey("queue")
TOKEN = web.AppKey("token", bytes)
MAX_BODY = 1024 * 1024


async def _webhook(request: web.Request) -> web.Response:
    given = request.headers.get("Authorization", "").encode("utf-8", "replace")
    if not hmac.compare_digest(given, request.app[TOKEN]):
        return web.json_response({"error": "unauthorized"}, status=401)
    if request.content_type != "application/json":
        return web.json_response({"error": "unsupported content type"}, status=415)
    try:
        payload = Payload.model_validate_json(await request.read())
    except pydantic.ValidationError as e:
        return web.json_response({"error": "invalid", "detail": e.errors(include_url=False)[:5]}, status=422)
    queue = request.app[QUEUE]
    if queue.maxsize - queue.qsize() < len(payload.alerts):
        return web.json_response({"error": "queue full"}, status=503)
    for alert in payload.alerts:
        queue.put_nowait(alert)
    return web.json_response({"accepted": len(payload.alerts)}, status=202)


async def _ready(_: web.Request) -> web.Response:
    return web.json_response({"ready": True})


async def _consumer(app: web.Application) -> AsyncIterator[None]:
    queue = app[QUEUE]

    async def drain() -> None:
        while True:
            await queue.get()

    task = asyncio.create_task(drain())
    yield
    task.cancel()


def make_app(token: str, *, max_pending: int = 10_000) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY)
    app[TOKEN] = f"Bearer {token}".encode()
    app[QUEUE] = asyncio.Queue(maxsize=max_pending)
    app.cleanup_ctx.append(_consumer)
    app.router.add_post("/webhook", _webhook)
    app.router.add_get("/readyz", _ready)
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fair_baseline_app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8097)
    parser.add_argument("--token", required=True, help="bearer token required on /webhook")
    args = parser.parse_args(argv)
    web.run_app(make_app(args.token), host=args.host, port=args.port, access_log=None, print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
