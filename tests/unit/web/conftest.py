"""Fixtures for the HTTP edge: an app with a gated recording handler and a fresh metrics registry."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from responder import metrics as metrics_mod
from responder.models import settings, work
from responder.web import app as app_mod
from responder.web import auth

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Recorder:
    """The queue's handler: records every item, and holds each one until `release` is set."""

    def __init__(self) -> None:
        self.items: list[work.WorkItem] = []
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self, item: work.WorkItem) -> None:
        await self.release.wait()
        self.items.append(item)


class Service:
    def __init__(self, app: web.Application, client: TestClient[Any, Any], recorder: Recorder) -> None:
        self.app = app
        self.client = client
        self.recorder = recorder

    @property
    def registry(self) -> CollectorRegistry:
        return self.app[app_mod.METRICS].registry

    def queued(self) -> list[str]:
        """Occurrence ids waiting or in flight."""
        return [item.event.occurrence_id for item in self.app[app_mod.QUEUE].items()]

    async def settle(self) -> list[str]:
        """Let the queue run empty; the occurrence ids the handler saw, in order."""
        self.recorder.release.set()
        await self.app[app_mod.QUEUE].wait_idle()
        return [item.event.occurrence_id for item in self.recorder.items]


ServiceFactory = Callable[..., Awaitable[Service]]


@pytest.fixture
async def make_service(aiohttp_client: Any) -> AsyncIterator[ServiceFactory]:
    recorders: list[Recorder] = []

    async def make(
        *, ready: bool = True, on_truncated: Callable[[int], None] | None = None, **overrides: Any
    ) -> Service:
        config = settings.Settings.model_validate(overrides)
        recorder = Recorder()
        recorders.append(recorder)
        app = app_mod.make_app(
            settings=config,
            metrics=metrics_mod.Metrics(CollectorRegistry()),
            handler=recorder,
            readiness=lambda: (ready, {"cluster": "unavailable: planning from labels only"}),
            authenticator=auth.Authenticator(bearer_token=TOKEN, basic_username="am", basic_password="pw"),
            on_truncated=on_truncated,
        )
        client = await aiohttp_client(app)
        return Service(app, client, recorder)

    yield make
    # A failed test may leave items held; let them finish so the app's drain does not wait out its grace period.
    for recorder in recorders:
        recorder.release.set()
