"""The ceiling of this stack: a bare aiohttp app that parses the same webhook JSON and answers 202.

No validation, no queue, no metrics, no access log: whatever oom-responder does beyond this costs throughput,
and the ratio service ÷ baseline (same machine, same run) is the figure the ingest benchmark reports.
It also serves `/readyz` so start-up can be compared with the service's.
"""

from __future__ import annotations

import argparse
import json
import sys

from aiohttp import web


async def _webhook(request: web.Request) -> web.Response:
    if request.headers.get("Authorization") != request.app["auth"]:
        return web.json_response({"error": "unauthorized", "detail": []}, status=401)
    body = json.loads(await request.read())
    return web.json_response({"accepted": len(body["alerts"])}, status=202)


async def _ready(_: web.Request) -> web.Response:
    return web.json_response({"ready": True})


def make_app(token: str | None) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)
    app["auth"] = f"Bearer {token}" if token else None
    app.router.add_post("/webhook", _webhook)
    app.router.add_get("/readyz", _ready)
    app.router.add_get("/healthz", _ready)
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.baseline_app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8098)
    parser.add_argument("--token", default=None, help="bearer token required on /webhook")
    args = parser.parse_args(argv)
    web.run_app(make_app(args.token), host=args.host, port=args.port, access_log=None, print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
