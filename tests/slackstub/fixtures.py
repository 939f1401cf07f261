"""pytest fixtures for notifier tests (test support): the Slack stand-in served locally, metrics, fake time.

Import them into a conftest.py: `from tests.slackstub.fixtures import fake_time, metrics, slack`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest
from aiohttp import test_utils

from responder import metrics as metrics_mod
from tests.slackstub import server, support

__all__ = ["CHANNEL", "TOKEN", "WEBHOOK_PATH", "Stub", "fake_time", "metrics", "slack"]

TOKEN = "xoxb-test-token"
WEBHOOK_PATH = "/services/T000/B000/webhooksecret"
CHANNEL = "C0INCIDENTS"


@dataclasses.dataclass
class Stub:
    stub: server.SlackStub
    url: str

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    @property
    def webhook_url(self) -> str:
        return f"{self.url}{WEBHOOK_PATH}"


@pytest.fixture
async def slack(
    aiohttp_server: Callable[..., Coroutine[Any, Any, test_utils.TestServer]],
) -> AsyncIterator[Stub]:
    """The stand-in, listening on loopback for this test; it accepts TOKEN, CHANNEL and WEBHOOK_PATH."""
    stub = server.SlackStub(tokens=(TOKEN,), channels=(CHANNEL,), webhook_paths=(WEBHOOK_PATH,))
    served = await aiohttp_server(stub.app)
    yield Stub(stub=stub, url=str(served.make_url("")).rstrip("/"))
    stub.release()


@pytest.fixture
def metrics() -> metrics_mod.Metrics:
    return metrics_mod.Metrics()


@pytest.fixture
def fake_time() -> support.FakeTime:
    return support.FakeTime()
