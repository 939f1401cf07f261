"""Alertmanager credentials and the quieter without an Alertmanager.

Covers: basic auth (file wins over env) and a missing password as a secret error, a bearer token from the
environment, no header when nothing is set, and no-op lines when no URL is configured. Creating and
expiring silences runs against the real Alertmanager in tests/alertmanager/test_silences.py.
"""

from __future__ import annotations

import base64
import datetime
from pathlib import Path

import pytest

from responder import config
from responder.engine import quieting
from responder.models import alerts, decisions, settings, targets


def test_basic_auth_reads_the_password_file_first(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    options = settings.AlertmanagerSettings(
        url="http://am:9093", basic_username="ops", basic_password_file=str(secret)
    )
    header = quieting.authorization(options, environ={"OOM_RESPONDER_ALERTMANAGER_PASSWORD": "from-env"})
    assert header == "Basic " + base64.b64encode(b"ops:from-file").decode()


def test_basic_auth_without_a_password_is_a_secret_error() -> None:
    options = settings.AlertmanagerSettings(url="http://am:9093", basic_username="ops")
    with pytest.raises(config.SecretError, match="no password"):
        quieting.authorization(options, environ={})


def test_a_bearer_token_from_the_environment_and_none_without_one() -> None:
    options = settings.AlertmanagerSettings(url="http://am:9093")
    assert quieting.authorization(options, environ={"OOM_RESPONDER_ALERTMANAGER_TOKEN": "t"}) == "Bearer t"
    assert quieting.authorization(options, environ={}) is None


async def test_without_a_url_nothing_is_silenced_and_it_says_so() -> None:
    quieter = quieting.Quieter.from_settings(settings.Settings(), environ={})
    now = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)
    event = alerts.AlertEvent(
        kind=settings.AlertKind.OOM_KILLED,
        alertname="OOMKilled",
        status=alerts.AlertStatus.FIRING,
        fingerprint="f",
        starts_at=now,
        namespace="shop",
        pod="web-0",
        container="app",
        severity=None,
        labels={},
        annotations={},
        generator_url="",
        external_url="",
    )
    quieted = await quieter.silence_after(
        event=event,
        target=targets.Target(targets.WorkloadKind.STATEFUL_SET, "shop", "web"),
        playbook=settings.Settings().playbooks[0],
        action=settings.Action.RAISE_MEMORY,
        outcome=decisions.Outcome.DONE,
        now=now,
    )
    assert quieted == quieting.Quieted(None, "no silence: no Alertmanager API configured")
    assert await quieter.expire("x", why="y") == "silence x not expired: no Alertmanager API configured"
    await quieter.close()
