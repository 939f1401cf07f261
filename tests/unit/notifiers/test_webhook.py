"""The generic JSON webhook notifier (responder/notifiers/webhook.py) against a local receiver.

Aspects covered:
* the body carries the notice model (kind, incident, alert, target, change, links) as plain JSON;
* storms are batched into one POST marked as a digest;
* 429 waits for Retry-After, 5xx is retried, other 4xx fail without retries;
* the URL (often holding a token) appears in no log record and no error.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from aiohttp import test_utils, web

from responder import metrics as metrics_mod
from responder.engine import notifying
from responder.models import settings
from responder.notifiers import webhook
from tests.slackstub import samples, support

SECRET_PATH = "/hooks/tok-3f9a1c2b7e"


class Receiver:
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.answers: list[web.Response] = []
        self.app = web.Application()
        self.app.router.add_post(SECRET_PATH, self._receive)

    async def _receive(self, request: web.Request) -> web.Response:
        if self.answers:
            return self.answers.pop(0)
        assert request.content_type == "application/json"
        self.bodies.append(await request.json())
        return web.Response(status=204)


@pytest.fixture
async def receiver(
    aiohttp_server: Callable[..., Coroutine[Any, Any, test_utils.TestServer]],
) -> tuple[Receiver, str]:
    receiver = Receiver()
    served = await aiohttp_server(receiver.app)
    return receiver, str(served.make_url(SECRET_PATH))


async def _send(
    url: str, metrics: metrics_mod.Metrics, fake_time: support.FakeTime, *batch: Any, **options: Any
) -> notifying.Notifiers:
    hook = settings.WebhookNotifierSettings(name="pager", url_env="PAGER_URL", **options)
    notifiers = notifying.Notifiers.from_settings(
        settings.NotifierSettings(webhooks=[hook]),
        metrics=metrics,
        environ={"PAGER_URL": url},
        clock=fake_time.clock,
        sleep=fake_time.sleep,
    )
    for notice in batch:
        notifiers.notify(notice)
    await notifiers.start()
    await notifiers.drain()
    await notifiers.close(5)
    return notifiers


def test_body_carries_the_notice_model_as_plain_json() -> None:
    notice = samples.notice()
    body = webhook.body([notice], digest=False)
    assert json.loads(json.dumps(body)) == body
    assert body["version"] == "1"
    assert body["digest"] is False
    (item,) = body["notices"]
    assert item["kind"] == "action"
    assert item["incident"] == notice.incident
    assert item["action"] == "raise_memory"
    assert item["outcome"] == "done"
    assert (item["from"], item["to"]) == ("512Mi", "640Mi")
    assert item["target"] == {"kind": "Deployment", "namespace": "payments", "name": "checkout"}
    assert item["alert"]["name"] == "OOMKilled"
    assert item["alert"]["runbook_url"] == "https://runbooks.example.com/RB-010#step-2"
    assert item["alert"]["occurrence"] == notice.incident
    assert item["silence_url"].startswith(f"{samples.EXTERNAL_URL}/#/silences/new?filter=")
    assert item["title"] == "CRITICAL · OOMKilled · memory limit raised"


def test_previous_log_lines_and_the_silence_id_travel_too() -> None:
    previews = samples.previews()
    [diag] = webhook.body([previews["Diagnostics: previous log (in the thread)"]], digest=False)["notices"]
    assert (
        diag["log_lines"][-1]
        == "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory"
    )
    [quiet] = webhook.body([previews["Silenced in Alertmanager (in the thread)"]], digest=False)["notices"]
    assert (quiet["kind"], quiet["silence_id"]) == ("silence", "3f6a2c1e-8b7d-4e52-9a0f-5d1c2b3a4e6f")


def test_guardrail_and_dry_run_fields() -> None:
    (blocked,) = webhook.body([samples.previews()["Blocked by a guardrail"]], digest=False)["notices"]
    assert (blocked["guardrail"], blocked["reason"], blocked["outcome"]) == (
        "ceiling",
        "guardrail",
        "blocked",
    )
    (dry,) = webhook.body([samples.previews()["Dry run"]], digest=False)["notices"]
    assert dry["dry_run"] is True


async def test_notices_are_posted_one_by_one(
    receiver: tuple[Receiver, str], metrics: metrics_mod.Metrics, fake_time: support.FakeTime
) -> None:
    server, url = receiver
    await _send(url, metrics, fake_time, samples.notice(), samples.notice(incident="b@t"))
    assert [body["digest"] for body in server.bodies] == [False, False]
    assert [body["notices"][0]["incident"] for body in server.bodies] == [samples.notice().incident, "b@t"]
    assert support.count(metrics, "pager", "sent") == 2


async def test_a_storm_is_one_digest_post(
    receiver: tuple[Receiver, str], metrics: metrics_mod.Metrics, fake_time: support.FakeTime
) -> None:
    server, url = receiver
    storm = [samples.notice(incident=f"s{i}@t") for i in range(12)]
    await _send(url, metrics, fake_time, *storm, digest_after=5)
    (body,) = server.bodies
    assert body["digest"] is True
    assert len(body["notices"]) == 12
    assert support.count(metrics, "pager", "digested") == 12


async def test_429_waits_and_5xx_retries_then_delivers(
    receiver: tuple[Receiver, str], metrics: metrics_mod.Metrics, fake_time: support.FakeTime
) -> None:
    server, url = receiver
    server.answers = [web.Response(status=429, headers={"Retry-After": "4"}), web.Response(status=502)]
    await _send(url, metrics, fake_time, samples.notice())
    assert len(server.bodies) == 1
    assert fake_time.sleeps == [4.0, 1.0]
    assert support.count(metrics, "pager", "sent") == 1


async def test_a_client_error_fails_at_once_and_the_url_is_never_logged(
    receiver: tuple[Receiver, str],
    metrics: metrics_mod.Metrics,
    fake_time: support.FakeTime,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    server, url = receiver
    server.answers = [web.Response(status=403)]
    await _send(url, metrics, fake_time, samples.notice())
    assert server.bodies == []
    assert fake_time.sleeps == []
    assert support.count(metrics, "pager", "failed") == 1
    ours = [r for r in caplog.records if r.name.startswith("responder")]
    text = "\n".join(r.getMessage() + " " + json.dumps(r.__dict__, default=str) for r in ours)
    assert "HTTP 403" in text
    assert "tok-3f9a1c2b7e" not in text


async def test_an_unreachable_url_is_not_in_the_error() -> None:
    transport = webhook.JsonWebhook(
        name="pager", url="http://127.0.0.1:9/hooks/tok-secret", timeout_seconds=2
    )
    try:
        with pytest.raises(Exception) as raised:
            await transport.deliver([samples.notice()], digest=False)
    finally:
        await transport.close()
    assert "tok-secret" not in str(raised.value)
    assert raised.value.__cause__ is None


async def test_alerts_alertmanager_left_out_are_said_in_the_next_notice_only(
    receiver: tuple[Receiver, str], metrics: metrics_mod.Metrics, fake_time: support.FakeTime
) -> None:
    server, url = receiver
    hook = settings.WebhookNotifierSettings(name="pager", url_env="PAGER_URL")
    notifiers = notifying.Notifiers.from_settings(
        settings.NotifierSettings(webhooks=[hook]),
        metrics=metrics,
        environ={"PAGER_URL": url},
        clock=fake_time.clock,
        sleep=fake_time.sleep,
    )
    notifiers.note_truncated(3)
    notifiers.note_truncated(4)
    notifiers.notify(samples.notice())
    notifiers.notify(samples.notice(incident="b@t"))
    await notifiers.start()
    await notifiers.drain()
    await notifiers.close(5)
    first, second = (body["notices"][0] for body in server.bodies)
    assert first["truncated_alerts"] == 7
    assert first["detail"].endswith(
        "Alertmanager left 7 alerts out of its notifications since the last notice (truncatedAlerts): they "
        "never reached oom-responder; raise max_alerts on its receiver."
    )
    assert second["truncated_alerts"] == 0
    assert "truncatedAlerts" not in second["detail"]
