"""The Alertmanager API v2 client for silences: quiet while a mitigation works, loud again when it fails.

The edge to Alertmanager (`/api/v2/silences`). Creates a silence (`POST`), reads one back (`GET`), and
expires one early (`DELETE /api/v2/silence/{id}`, what `amtool silence expire` does) when a verdict fails or
the action is reverted. Every call has a timeout and is tried once: Alertmanager is an optional part, so a
failure raises `SilenceError` with a line for the notice and the mitigation goes on. Which silence to create
is `responder.logic.silencing`'s decision. Credentials are handed in; it reads no secret itself.
"""

from __future__ import annotations

import datetime
import logging
import urllib.parse
from typing import Any

import aiohttp

from responder.models import diagnostics, settings

__all__ = ["SilenceError", "Silences", "to_json"]

logger = logging.getLogger(__name__)


class SilenceError(Exception):
    """Alertmanager did not do it (down, refused, timed out); the message is a line for the notice."""


def _time(at: datetime.datetime) -> str:
    return at.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def to_json(silence: diagnostics.Silence) -> dict[str, Any]:
    """The API v2 `PostableSilence` body. Pure."""
    body: dict[str, Any] = {
        "matchers": [
            {"name": m.name, "value": m.value, "isRegex": m.is_regex, "isEqual": m.is_equal}
            for m in silence.matchers
        ],
        "startsAt": _time(silence.starts_at),
        "endsAt": _time(silence.ends_at),
        "createdBy": silence.created_by,
        "comment": silence.comment,
    }
    if silence.id:
        body["id"] = silence.id
    return body


def _from_json(data: dict[str, Any]) -> diagnostics.Silence:
    return diagnostics.Silence(
        matchers=tuple(
            diagnostics.SilenceMatcher(
                name=str(m.get("name", "")),
                value=str(m.get("value", "")),
                is_regex=bool(m.get("isRegex")),
                is_equal=bool(m.get("isEqual", True)),
            )
            for m in data.get("matchers") or []
        ),
        starts_at=datetime.datetime.fromisoformat(str(data["startsAt"]).replace("Z", "+00:00")),
        ends_at=datetime.datetime.fromisoformat(str(data["endsAt"]).replace("Z", "+00:00")),
        created_by=str(data.get("createdBy", "")),
        comment=str(data.get("comment", "")),
        id=str(data.get("id", "")),
        state=str((data.get("status") or {}).get("state", "")),
    )


class Silences:
    """Silences in one Alertmanager. Build once; `await close()` at shutdown."""

    def __init__(
        self,
        config: settings.AlertmanagerSettings,
        *,
        authorization: str | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        if config.url is None:
            raise ValueError("alertmanager.url is not set")
        self.base = config.url
        self.timeout = aiohttp.ClientTimeout(total=config.timeout_seconds)
        headers = {"Accept": "application/json", "User-Agent": "oom-responder"}
        if authorization:
            headers["Authorization"] = authorization
        self._headers = headers
        self._own_session = session is None
        self.session = session or aiohttp.ClientSession()

    async def close(self) -> None:
        if self._own_session:
            await self.session.close()

    async def _call(self, method: str, path: str, *, body: Any = None) -> Any:
        url = self.base + path
        try:
            async with self.session.request(
                method, url, json=body, headers=self._headers, timeout=self.timeout, allow_redirects=False
            ) as response:
                text = await response.text()
                if response.status >= 300:
                    raise SilenceError(
                        f"Alertmanager answered {response.status} to {method} {path}: {text.strip()[:300]}"
                    )
                if not text.strip():
                    return None
                try:
                    return await response.json(content_type=None)
                except ValueError as e:
                    raise SilenceError(f"Alertmanager sent no JSON to {method} {path}") from e
        except (aiohttp.ClientError, TimeoutError) as e:
            raise SilenceError(
                f"Alertmanager unreachable at {self.base}: {type(e).__name__}: {e}"[:300]
            ) from e

    async def create(self, silence: diagnostics.Silence) -> str:
        """Create the silence; return its id."""
        answer = await self._call("POST", "/api/v2/silences", body=to_json(silence))
        silence_id = answer.get("silenceID") if isinstance(answer, dict) else None
        if not silence_id:
            raise SilenceError("Alertmanager created no silence id")
        logger.info("silence %s created until %s", silence_id, _time(silence.ends_at))
        return str(silence_id)

    async def get(self, silence_id: str) -> diagnostics.Silence:
        answer = await self._call("GET", f"/api/v2/silence/{urllib.parse.quote(silence_id, safe='')}")
        if not isinstance(answer, dict):
            raise SilenceError(f"Alertmanager sent no silence for {silence_id}")
        return _from_json(answer)

    async def expire(self, silence_id: str) -> bool:
        """Expire the silence now. True when this call ended it; False when it had ended already (or
        Alertmanager no longer knows it): the alert is audible again either way."""
        try:
            current = await self.get(silence_id)
        except SilenceError as e:
            if " 404 " in str(e):
                return False
            raise
        # Alertmanager 0.25 answers 200 to expiring an expired silence; reading it first says which it was.
        if current.state == "expired":
            return False
        try:
            await self._call("DELETE", f"/api/v2/silence/{urllib.parse.quote(silence_id, safe='')}")
        except SilenceError as e:
            if "already expired" in str(e):
                return False
            raise
        logger.info("silence %s expired early", silence_id)
        return True
