"""Keeping an alert quiet while its mitigation works, and loud again when the mitigation fails.

Stage: follow. After a mitigation was carried out, `Quieter.silence_after` asks `responder.logic.silencing`
which silence it earns and creates it in Alertmanager; `Quieter.expire` ends one early (a failed verdict, a
reverted action: the verdict code calls it with the id kept in the ledger entry). Alertmanager is optional:
every failure comes back as a line for the notice, never as an exception, and each call is bounded by
`alertmanager.timeout_seconds`. With no `alertmanager.url` both are no-ops that say so.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import logging
import os
from collections.abc import Mapping

from responder import config
from responder.logic import silencing
from responder.models import alerts, decisions, settings, targets
from responder.notifiers import silences

__all__ = ["Quieted", "Quieter", "authorization"]

logger = logging.getLogger(__name__)


def authorization(
    options: settings.AlertmanagerSettings, *, environ: Mapping[str, str] | None = None
) -> str | None:
    """The Authorization header for the Alertmanager API from the configured files or environment."""
    environ = os.environ if environ is None else environ
    if options.basic_username:
        password = config.read_secret(
            file=options.basic_password_file, env=options.basic_password_env, environ=environ
        )
        if password is None:
            raise config.SecretError(
                "alertmanager.basic_username is set but no password (basic_password_file/_env)"
            )
        raw = f"{options.basic_username}:{password}".encode()
        return f"Basic {base64.b64encode(raw).decode('ascii')}"
    token = config.read_secret(file=options.bearer_token_file, env=options.bearer_token_env, environ=environ)
    return f"Bearer {token}" if token else None


@dataclasses.dataclass(frozen=True, slots=True)
class Quieted:
    """What `silence_after` did: the silence id when one was created, and the line for the notice."""

    silence_id: str | None
    line: str


class Quieter:
    """Creates and expires the service's silences. Build with `from_settings`; `await close()` once."""

    def __init__(self, settings_: settings.Settings, *, client: silences.Silences | None) -> None:
        self.settings = settings_
        self.client = client

    @classmethod
    def from_settings(
        cls, settings_: settings.Settings, *, environ: Mapping[str, str] | None = None
    ) -> Quieter:
        options = settings_.alertmanager
        if options.url is None or not options.silences:
            return cls(settings_, client=None)
        return cls(
            settings_,
            client=silences.Silences(options, authorization=authorization(options, environ=environ)),
        )

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()

    async def silence_after(
        self,
        *,
        event: alerts.AlertEvent,
        target: targets.Target,
        playbook: settings.Playbook,
        action: settings.Action,
        outcome: decisions.Outcome,
        now: datetime.datetime,
    ) -> Quieted:
        proposed, why = silencing.propose(
            event=event,
            target=target,
            playbook=playbook,
            action=action,
            outcome=outcome,
            config=self.settings,
            now=now,
        )
        if proposed is None or self.client is None:
            return Quieted(None, f"no silence: {why or 'no Alertmanager API configured'}")
        try:
            silence_id = await self.client.create(proposed)
        except silences.SilenceError as e:
            logger.warning("no silence for %s: %s", target.key, e)
            return Quieted(None, f"no silence: {e}")
        until = proposed.ends_at.astimezone(datetime.UTC).strftime("%H:%M UTC")
        return Quieted(
            silence_id,
            f"silenced {event.alertname} for {target.kind.value} {target.namespace}/{target.name} until {until} "
            f"(Alertmanager silence {silence_id}); it is expired early if the mitigation fails",
        )

    async def expire(self, silence_id: str, *, why: str) -> str:
        """End the silence now so the alert is heard again; a line for the notice saying what happened."""
        if self.client is None:
            return f"silence {silence_id} not expired: no Alertmanager API configured"
        try:
            ended = await self.client.expire(silence_id)
        except silences.SilenceError as e:
            logger.warning("could not expire silence %s: %s", silence_id, e)
            return f"silence {silence_id} could not be expired ({e}); it ends on its own at its end time"
        if ended:
            return f"silence {silence_id} expired early: {why}"
        return f"silence {silence_id} had already ended"
