"""Webhook authentication.

Covers: bearer and basic credentials checked; wrong schemes and garbage refused; secrets from file or env;
a missing secret is a start-up error naming the key to set; `none` disables auth with a warning; a token
file is followed after start (a rotated Secret is used within a second, a failed or empty re-read keeps the
last token).
"""

from __future__ import annotations

import base64
import logging
import os
from pathlib import Path

import pytest

from responder.models import settings
from responder.web import auth


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_bearer_tokens_are_checked() -> None:
    checker = auth.Authenticator(bearer_token="tok")
    assert checker.is_authorized("Bearer tok")
    assert checker.is_authorized("bearer  tok ")
    assert not checker.is_authorized("Bearer tok2")
    assert not checker.is_authorized(None)
    assert not checker.is_authorized(_basic("tok", "tok"))


def test_basic_credentials_are_checked() -> None:
    checker = auth.Authenticator(basic_username="am", basic_password="pw")
    assert checker.is_authorized(_basic("am", "pw"))
    assert not checker.is_authorized(_basic("am", "px"))
    assert not checker.is_authorized(_basic("xx", "pw"))
    assert not checker.is_authorized("Basic %%%")
    assert not checker.is_authorized("Basic " + base64.b64encode(b"ampw").decode())
    assert not checker.is_authorized("Bearer pw")


def test_the_token_comes_from_a_file_before_the_environment(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("from-file\n")
    config = settings.AuthSettings(bearer_token_file=str(token))
    checker = auth.Authenticator.from_settings(config, environ={"OOM_RESPONDER_WEBHOOK_TOKEN": "from-env"})
    assert checker.is_authorized("Bearer from-file")
    assert not checker.is_authorized("Bearer from-env")


def test_bearer_or_basic_accepts_either() -> None:
    config = settings.AuthSettings(mode="bearer-or-basic", basic_username="am")
    environ = {"OOM_RESPONDER_WEBHOOK_TOKEN": "tok", "OOM_RESPONDER_WEBHOOK_PASSWORD": "pw"}
    checker = auth.Authenticator.from_settings(config, environ=environ)
    assert checker.is_authorized("Bearer tok")
    assert checker.is_authorized(_basic("am", "pw"))


@pytest.mark.parametrize(
    ("config", "message"),
    [
        pytest.param(
            settings.AuthSettings(), "OOM_RESPONDER_WEBHOOK_TOKEN environment variable", id="bearer"
        ),
        pytest.param(settings.AuthSettings(mode="basic"), "auth.basic_username is not set", id="basic-user"),
        pytest.param(
            settings.AuthSettings(mode="basic", basic_username="am"),
            "auth.basic_password_file",
            id="basic-pw",
        ),
        pytest.param(
            settings.AuthSettings(bearer_token_file="/nonexistent/token"),
            "cannot read secret file",
            id="file",
        ),
    ],
)
def test_a_missing_secret_is_a_start_up_error(config: settings.AuthSettings, message: str) -> None:
    with pytest.raises(auth.AuthError, match=message):
        auth.Authenticator.from_settings(config, environ={})


def test_none_disables_auth_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        checker = auth.Authenticator.from_settings(settings.AuthSettings(mode="none"), environ={})
    assert checker.is_authorized(None)
    assert "authentication is disabled" in caplog.text


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def _replace(path: Path, text: str) -> None:
    # The kubelet swaps a Secret's files atomically; the new file has a new mtime.
    before = path.stat().st_mtime_ns
    path.write_text(text)
    os.utime(path, ns=(before + 1_000_000_000, before + 1_000_000_000))


def test_a_rotated_token_file_is_followed_without_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("first\n")
    clock = Clock()
    checker = auth.Authenticator.from_settings(
        settings.AuthSettings(bearer_token_file=str(path)), environ={}, clock=clock
    )
    assert checker.is_authorized("Bearer first")
    _replace(path, "second\n")
    assert checker.is_authorized("Bearer first"), "looked at again at most once a second"
    clock.now += 1
    assert checker.is_authorized("Bearer second")
    assert not checker.is_authorized("Bearer first")


def test_an_unreadable_or_empty_rotated_file_keeps_the_last_token(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("first\n")
    clock = Clock()
    checker = auth.Authenticator.from_settings(
        settings.AuthSettings(bearer_token_file=str(path)), environ={}, clock=clock
    )
    _replace(path, "\n")
    clock.now += 1
    assert checker.is_authorized("Bearer first")
    path.unlink()
    clock.now += 1
    assert checker.is_authorized("Bearer first")
    path.write_text("third\n")
    clock.now += 1
    assert checker.is_authorized("Bearer third")
