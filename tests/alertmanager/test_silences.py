"""Silences in the real Alertmanager (v0.25, API v2), created and expired by `responder.notifiers.silences`.

Covers: a silence proposed for a mitigation is created, `amtool` lists it with createdBy and the ledger
comment, the silenced alert stops notifying while a sibling workload's alert with the same name keeps
notifying, expiring it early makes the alert notify again, expiring twice is harmless, and Alertmanager
down is a SilenceError with a clear line (never a hang: every call has a timeout).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from responder.engine import quieting
from responder.logic import silencing
from responder.models import alerts, decisions, diagnostics, settings, targets
from responder.notifiers import silences
from tests.alertmanager import conftest as am_support

pytestmark = pytest.mark.alertmanager

WEB = targets.Target(targets.WorkloadKind.DEPLOYMENT, "shop", "web")
WEB_POD = "web-7d9f8b6c5-x2kqz"
SIBLING_POD = "web-api-0"  # StatefulSet web-api: same alert name, same namespace, not acted on


class Receiver:
    """Every notification Alertmanager sends, as (alert pod, alert status) pairs, in arrival order."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        for alert in body["alerts"]:
            self.seen.append((alert["labels"]["pod"], alert["status"]))
        return web.Response(status=200)

    def count(self, pod: str) -> int:
        return sum(1 for seen_pod, status in self.seen if seen_pod == pod and status == "firing")


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    found = Receiver()
    app = web.Application()
    app.router.add_post("/webhook", found.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield found, f"http://{host}:{port}/webhook"
    await runner.cleanup()


def amtool(url: str, *args: str) -> Any:
    proc = subprocess.run(
        ["amtool", f"--alertmanager.url={url}", *args, "-o", "json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return json.loads(proc.stdout or "null")


def event_for(pod: str, now: datetime.datetime) -> alerts.AlertEvent:
    return alerts.AlertEvent(
        kind=settings.AlertKind.OOM_KILLED,
        alertname="OOMKilled",
        status=alerts.AlertStatus.FIRING,
        fingerprint="abc123",
        starts_at=now,
        namespace="shop",
        pod=pod,
        container="app",
        severity="critical",
        labels={"alertname": "OOMKilled", "namespace": "shop", "pod": pod, "container": "app"},
        annotations={},
        generator_url="",
        external_url="",
    )


async def test_silences_the_mitigated_workload_only_and_expires_early(
    start_alertmanager: Any, receiver: tuple[Receiver, str]
) -> None:
    seen, webhook_url = receiver
    am = start_alertmanager(webhook_url, repeat_interval="1s")
    now = datetime.datetime.now(datetime.UTC)
    firing = [
        am_support.am_alert("OOMKilled", pod=WEB_POD, starts_at=now),
        am_support.am_alert("OOMKilled", pod=SIBLING_POD, starts_at=now),
    ]
    await am.post_alerts(firing)
    await am_support.wait_until(
        lambda: seen.count(WEB_POD) >= 1 and seen.count(SIBLING_POD) >= 1, what="both alerts notified"
    )

    config = settings.Settings.model_validate({"alertmanager": {"url": am.url}})
    playbook = config.playbooks[0]
    proposed, why = silencing.propose(
        event=event_for(WEB_POD, now),
        target=WEB,
        playbook=playbook,
        action=settings.Action.RAISE_MEMORY,
        outcome=decisions.Outcome.DONE,
        config=config,
        now=now,
    )
    assert proposed is not None, why
    client = silences.Silences(config.alertmanager)
    try:
        silence_id = await client.create(proposed)

        listed = amtool(am.url, "silence", "query")
        [mine] = [s for s in listed if s["id"] == silence_id]
        assert mine["createdBy"] == "oom-responder"
        assert mine["status"]["state"] == "active"
        assert "raise_memory on Deployment shop/web" in mine["comment"]
        assert {m["name"]: m["value"] for m in mine["matchers"]}["pod"] == silencing.pod_pattern(WEB)

        # Alertmanager marks the web pod's alert silenced and keeps the sibling's audible.
        silenced = amtool(am.url, "alert", "query", "--silenced", "alertname=OOMKilled")
        assert [a["labels"]["pod"] for a in silenced] == [WEB_POD]
        assert silenced[0]["status"]["silencedBy"] == [silence_id]

        # The silenced alert stops notifying while the sibling keeps being repeated.
        await am.post_alerts(firing)
        await asyncio.sleep(0)
        web_before, sibling_before = seen.count(WEB_POD), seen.count(SIBLING_POD)
        await am_support.wait_until(
            lambda: seen.count(SIBLING_POD) >= sibling_before + 3, what="three more sibling notifications"
        )
        assert seen.count(WEB_POD) <= web_before + 1  # at most one notification already in flight

        # A failed verdict expires it early: the web pod's alert is audible again.
        assert await client.expire(silence_id) is True
        expired = await client.get(silence_id)
        assert expired.state == "expired"
        assert silence_id in [s["id"] for s in amtool(am.url, "silence", "query", "--expired")]
        web_after = seen.count(WEB_POD)
        await am_support.wait_until(
            lambda: seen.count(WEB_POD) >= web_after + 2, what="the alert notifying again"
        )

        # Expiring again (a second replica, a retried verdict) is harmless.
        assert await client.expire(silence_id) is False
    finally:
        await client.close()


async def test_alertmanager_down_is_a_clear_error_not_a_hang() -> None:
    port = am_support._free_port()
    client = silences.Silences(
        settings.AlertmanagerSettings(url=f"http://127.0.0.1:{port}", timeout_seconds=2)
    )
    now = datetime.datetime.now(datetime.UTC)
    silence, _ = silencing.propose(
        event=event_for(WEB_POD, now),
        target=WEB,
        playbook=settings.Settings().playbooks[0],
        action=settings.Action.RAISE_MEMORY,
        outcome=decisions.Outcome.DONE,
        config=settings.Settings.model_validate({"alertmanager": {"url": f"http://127.0.0.1:{port}"}}),
        now=now,
    )
    assert silence is not None
    try:
        with pytest.raises(
            silences.SilenceError, match=f"Alertmanager unreachable at http://127.0.0.1:{port}"
        ):
            await client.create(silence)
        with pytest.raises(silences.SilenceError, match="unreachable"):
            await client.expire("0000")
    finally:
        await client.close()


async def test_a_refused_silence_names_alertmanagers_answer(start_alertmanager: Any, receiver: Any) -> None:
    am = start_alertmanager(receiver[1])
    now = datetime.datetime.now(datetime.UTC)
    client = silences.Silences(settings.AlertmanagerSettings(url=am.url))
    try:
        bad = diagnostics.Silence(
            matchers=(),
            starts_at=now,
            ends_at=now - datetime.timedelta(minutes=1),
            created_by="oom-responder",
            comment="x",
        )
        with pytest.raises(silences.SilenceError, match=r"Alertmanager answered 422 .*matchers"):
            await client.create(bad)
    finally:
        await client.close()


async def test_the_quieter_silences_after_a_mitigation_and_expires_on_a_failed_verdict(
    start_alertmanager: Any, receiver: tuple[Receiver, str]
) -> None:
    am = start_alertmanager(receiver[1])
    now = datetime.datetime.now(datetime.UTC)
    config = settings.Settings.model_validate({"alertmanager": {"url": am.url}})
    quieter = quieting.Quieter.from_settings(config, environ={"OOM_RESPONDER_ALERTMANAGER_TOKEN": "t0k"})
    try:
        quieted = await quieter.silence_after(
            event=event_for(WEB_POD, now),
            target=WEB,
            playbook=config.playbooks[0],
            action=settings.Action.RAISE_MEMORY,
            outcome=decisions.Outcome.DONE,
            now=now,
        )
        assert quieted.silence_id is not None
        assert quieted.line.startswith("silenced OOMKilled for Deployment shop/web until ")
        assert f"(Alertmanager silence {quieted.silence_id})" in quieted.line
        [listed] = amtool(am.url, "silence", "query")
        assert (listed["id"], listed["createdBy"]) == (quieted.silence_id, "oom-responder")

        line = await quieter.expire(quieted.silence_id, why="the 1 h verdict found the leak still growing")
        assert line == (
            f"silence {quieted.silence_id} expired early: the 1 h verdict found the leak still growing"
        )
        assert amtool(am.url, "silence", "query") == []
        assert (
            await quieter.expire(quieted.silence_id, why="again")
            == f"silence {quieted.silence_id} had already ended"
        )

        dry = await quieter.silence_after(
            event=event_for(WEB_POD, now),
            target=WEB,
            playbook=config.playbooks[0],
            action=settings.Action.RAISE_MEMORY,
            outcome=decisions.Outcome.WOULD_DO,
            now=now,
        )
        assert dry == quieting.Quieted(None, "no silence: the action was would_do, not done")
    finally:
        await quieter.close()


async def test_the_quieter_turns_alertmanager_down_into_a_line() -> None:
    port = am_support._free_port()
    config = settings.Settings.model_validate(
        {"alertmanager": {"url": f"http://127.0.0.1:{port}", "timeout_seconds": 2}}
    )
    quieter = quieting.Quieter.from_settings(config, environ={})
    try:
        quieted = await quieter.silence_after(
            event=event_for(WEB_POD, datetime.datetime.now(datetime.UTC)),
            target=WEB,
            playbook=config.playbooks[0],
            action=settings.Action.SCALE_OUT,
            outcome=decisions.Outcome.DONE,
            now=datetime.datetime.now(datetime.UTC),
        )
        assert quieted.silence_id is None
        assert quieted.line.startswith(f"no silence: Alertmanager unreachable at http://127.0.0.1:{port}")
        line = await quieter.expire("abc", why="verdict failed")
        assert line.startswith("silence abc could not be expired (Alertmanager unreachable")
    finally:
        await quieter.close()
