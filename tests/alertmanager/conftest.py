"""The real Alertmanager and the service, both on loopback, for end-to-end delivery tests.

Fixtures:

* ``service`` (async): the service's app on a free port, with a recording handler that holds items while its
  ``release`` event is clear, and a log of every webhook answer (status and JSON body) in arrival order.
* ``start_alertmanager``: ``(webhook_url, token_file) -> Alertmanager`` starting
  ``/usr/bin/prometheus-alertmanager`` with no gossip, a temp storage path, short group timers and a webhook
  receiver with ``send_resolved: true`` and a bearer ``credentials_file``. Stopped by the fixture.

Tests are skipped with the reason if the binary is missing (``scripts/test`` installs it).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from responder import metrics as metrics_mod
from responder.models import settings, work
from responder.web import app as app_mod
from responder.web import auth

BINARY = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"
TOKEN = "am-test-token"

pytestmark = pytest.mark.alertmanager


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_until(predicate: Callable[[], bool], *, what: str, deadline_seconds: float = 60) -> None:
    """Poll until `predicate()` holds; fail naming `what` after the deadline (a bound, not a measurement)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_seconds
    while not predicate():
        if loop.time() > end:
            pytest.fail(f"gave up waiting for {what} after {deadline_seconds}s")
        await asyncio.sleep(0.1)


class Recorder:
    def __init__(self) -> None:
        self.items: list[work.WorkItem] = []
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self, item: work.WorkItem) -> None:
        await self.release.wait()
        self.items.append(item)


class Service:
    def __init__(
        self, app: web.Application, url: str, recorder: Recorder, answers: list[tuple[int, Any]]
    ) -> None:
        self.app = app
        self.url = url
        self.recorder = recorder
        self.answers = answers
        """(status, JSON body) of every POST /webhook, in the order they were answered."""

    def queued(self) -> list[work.WorkItem]:
        return self.app[app_mod.QUEUE].items()


ServiceFactory = Callable[..., Awaitable[Service]]


@pytest.fixture
async def make_service() -> AsyncIterator[ServiceFactory]:
    runners: list[web.AppRunner] = []
    recorders: list[Recorder] = []

    async def make(**overrides: Any) -> Service:
        recorder = Recorder()
        recorders.append(recorder)
        answers: list[tuple[int, Any]] = []

        @web.middleware
        async def record(request: web.Request, handler: Any) -> web.StreamResponse:
            # Innermost: sees the receiver's 202 and its JSON errors (raised as HTTP exceptions).
            try:
                response: web.StreamResponse = await handler(request)
            except web.HTTPException as e:
                answers.append((e.status, json.loads(e.text or "null")))
                raise
            if isinstance(response, web.Response) and response.text:
                answers.append((response.status, json.loads(response.text)))
            return response

        app = app_mod.make_app(
            settings=settings.Settings.model_validate(overrides),
            metrics=metrics_mod.Metrics(CollectorRegistry()),
            handler=recorder,
            readiness=lambda: (True, {}),
            authenticator=auth.Authenticator(bearer_token=TOKEN),
        )
        app.middlewares.append(record)
        runner = web.AppRunner(app)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        return Service(app, f"http://{host}:{port}", recorder, answers)

    yield make
    for recorder in recorders:
        recorder.release.set()
    for runner in runners:
        await runner.cleanup()


class Alertmanager:
    def __init__(self, url: str, process: subprocess.Popen[bytes], log: Path) -> None:
        self.url = url
        self.process = process
        self.log = log

    async def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{self.url}/api/v2/alerts", json=alerts) as r,
        ):
            assert r.status == 200, await r.text()


def am_alert(
    alertname: str,
    *,
    pod: str,
    namespace: str = "shop",
    starts_at: datetime.datetime,
    resolved_at: datetime.datetime | None = None,
) -> dict[str, Any]:
    """An alert for Alertmanager's v2 API (a resolved one has endsAt in the past)."""
    body: dict[str, Any] = {
        "labels": {"alertname": alertname, "namespace": namespace, "pod": pod, "container": "app"},
        "annotations": {"summary": f"{alertname} on {pod}"},
        "startsAt": starts_at.isoformat(),
        "generatorURL": "http://prometheus.test/graph",
    }
    body["endsAt"] = (resolved_at or starts_at + datetime.timedelta(hours=1)).isoformat()
    return body


@pytest.fixture
def start_alertmanager(tmp_path: Path) -> Iterator[Callable[[str], Alertmanager]]:
    if not Path(BINARY).exists():
        pytest.skip(
            f"Alertmanager binary not found at {BINARY} (scripts/test installs prometheus-alertmanager)"
        )
    started: list[Alertmanager] = []

    def start(webhook_url: str, *, repeat_interval: str = "2s") -> Alertmanager:
        token_file = tmp_path / "webhook-token"
        token_file.write_text(TOKEN + "\n")
        config = {
            "route": {
                "receiver": "oom-responder",
                "group_by": ["namespace"],
                "group_wait": "1s",
                "group_interval": "1s",
                "repeat_interval": repeat_interval,
            },
            "receivers": [
                {
                    "name": "oom-responder",
                    "webhook_configs": [
                        {
                            "url": webhook_url,
                            "send_resolved": True,
                            "http_config": {"authorization": {"credentials_file": str(token_file)}},
                        }
                    ],
                }
            ],
        }
        config_file = tmp_path / "alertmanager.yml"
        config_file.write_text(json.dumps(config))  # JSON is YAML
        port = _free_port()
        log = tmp_path / "alertmanager.log"
        process = subprocess.Popen(
            [
                BINARY,
                f"--config.file={config_file}",
                f"--storage.path={tmp_path / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
                "--log.level=debug",
            ],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        am = Alertmanager(f"http://127.0.0.1:{port}", process, log)
        started.append(am)
        _wait_ready(am)
        return am

    yield start
    for am in started:
        am.process.terminate()
        try:
            am.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            am.process.kill()
            am.process.wait()


def _wait_ready(am: Alertmanager) -> None:
    import urllib.request  # noqa: PLC0415

    end = time.monotonic() + 30
    while time.monotonic() < end:
        if am.process.poll() is not None:
            pytest.fail(f"Alertmanager exited: {am.log.read_text()[-2000:]}")
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{am.url}/-/ready", timeout=1) as response:
            if response.status == 200:
                return
        time.sleep(0.1)
    pytest.fail(f"Alertmanager not ready: {am.log.read_text()[-2000:]}")
