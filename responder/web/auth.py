"""Webhook authentication: bearer token and/or basic auth, compared in constant time.

Secrets are read at start from files or environment variables (through `responder.config`), never from the
YAML; a bearer token file is followed afterwards (re-read when it changes), so rotating the Secret needs no
restart. A missing secret where auth is required is a start-up error, not an open door.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import time
from collections.abc import Callable, Mapping

from responder import config
from responder.models import settings

__all__ = ["AuthError", "Authenticator"]

logger = logging.getLogger(__name__)


class AuthError(Exception):
    """Auth is configured but cannot work (a secret is missing); the service must not start."""


class Authenticator:
    def __init__(
        self,
        *,
        bearer_token: str | None = None,
        bearer_token_file: config.SecretFile | None = None,
        basic_username: str | None = None,
        basic_password: str | None = None,
        disabled: bool = False,
    ) -> None:
        self._fixed_token = bearer_token.encode() if bearer_token else None
        # A token file (a mounted Secret) is followed while the service runs: rotation needs no restart.
        self._token_file = bearer_token_file
        self._basic = (
            (basic_username.encode(), basic_password.encode()) if basic_username and basic_password else None
        )
        self.disabled = disabled
        self._authorization = (
            f"Bearer {bearer_token}"
            if bearer_token
            else "Basic " + base64.b64encode(f"{basic_username}:{basic_password}".encode()).decode()
            if basic_username and basic_password
            else None
        )
        if not disabled and self._token is None and self._basic is None:
            raise AuthError("no credentials configured")
        schemes = [name for name, on in (("Bearer", self._token), ("Basic", self._basic)) if on]
        self.challenge = ", ".join(f'{scheme} realm="oom-responder"' for scheme in schemes) or "none"
        self.challenge_hint = f"send an Authorization header ({' or '.join(schemes) or 'none needed'})"

    @property
    def _token(self) -> bytes | None:
        if self._token_file is not None:
            return self._token_file.current().encode()
        return self._fixed_token

    @classmethod
    def from_settings(
        cls,
        auth: settings.AuthSettings,
        *,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> Authenticator:
        """Read the secrets `auth` points at; raise AuthError naming what is missing."""
        if auth.mode == "none":
            logger.warning(
                "webhook authentication is disabled (auth.mode: none): anyone who can reach it can post"
            )
            return cls(disabled=True)
        token = password = None
        token_file: config.SecretFile | None = None
        try:
            if auth.mode in ("bearer", "bearer-or-basic"):
                if auth.bearer_token_file:
                    token_file = config.SecretFile(auth.bearer_token_file, clock=clock)
                    token = token_file.current()
                else:
                    token = config.read_secret(file=None, env=auth.bearer_token_env, environ=environ)
                if token is None:
                    raise AuthError(
                        f"auth.mode is {auth.mode} but no bearer token was found: set "
                        + _where(file_key="auth.bearer_token_file", env=auth.bearer_token_env)
                    )
            if auth.mode in ("basic", "bearer-or-basic"):
                if not auth.basic_username:
                    raise AuthError(f"auth.mode is {auth.mode} but auth.basic_username is not set")
                password = config.read_secret(
                    file=auth.basic_password_file, env=auth.basic_password_env, environ=environ
                )
                if password is None:
                    raise AuthError(
                        f"auth.mode is {auth.mode} but no basic-auth password was found: set "
                        + _where(file_key="auth.basic_password_file", env=auth.basic_password_env)
                    )
        except config.SecretError as e:
            raise AuthError(str(e)) from e
        return cls(
            bearer_token=token,
            bearer_token_file=token_file,
            basic_username=auth.basic_username,
            basic_password=password,
        )

    def authorization(self) -> str | None:
        """An Authorization header this service accepts (None when auth is disabled): for handing alerts off
        to a peer replica, which shares this configuration."""
        return None if self.disabled else self._authorization

    def is_authorized(self, header: str | None) -> bool:
        """Whether an Authorization header value carries valid credentials."""
        if self.disabled:
            return True
        if not header:
            return False
        scheme, _, credentials = header.strip().partition(" ")
        credentials = credentials.strip()
        scheme = scheme.lower()
        if scheme == "bearer" and self._token is not None:
            return hmac.compare_digest(_header_bytes(credentials), self._token)
        if scheme == "basic" and self._basic is not None:
            try:
                decoded = base64.b64decode(credentials, validate=True)
            except (binascii.Error, ValueError):
                return False
            user, sep, password = decoded.partition(b":")
            # Compare both halves every time, so timing does not tell which one was wrong.
            user_ok = hmac.compare_digest(user, self._basic[0])
            password_ok = hmac.compare_digest(password, self._basic[1])
            return bool(sep) and user_ok and password_ok
        return False


def _header_bytes(value: str) -> bytes:
    # aiohttp decodes header bytes that are not UTF-8 into lone surrogates ("\xff" -> "\udcff"), which a plain
    # encode() refuses: turn them back into the bytes that were sent, which then simply do not match.
    return value.encode("utf-8", "surrogateescape")


def _where(*, file_key: str, env: str | None) -> str:
    return f"{file_key}" + (f" or the {env} environment variable" if env else "")
