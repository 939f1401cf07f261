"""Fan-out of notices to every configured notifier, without ever blocking the pipeline.

The engine calls `Notifiers.notify(notice)`: it logs the notice and puts it into each notifier's bounded
outbox, then returns at once. Slack being slow, rate-limiting or down costs a mitigation nothing: delivery
happens in the outboxes' own tasks, and what does not fit is dropped and counted, never waited for.
When a notice starts a Slack thread, the thread ts is handed to a `ThreadRecorder` (the ledger-backed
`responder.kube.threads.ThreadKeeper` in the service) in a background task, so follow-ups find the thread
after a restart or on another replica.
It must not render messages nor talk to Slack or Kubernetes itself.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from collections.abc import Mapping
from typing import Protocol

from responder import config
from responder import metrics as metrics_mod
from responder.models import notices, settings
from responder.notifiers import outboxes, slack, webhook

__all__ = ["Notifiers", "ThreadRecorder", "Truncations"]

logger = logging.getLogger(__name__)


class ThreadRecorder(Protocol):
    """Keeps an incident's thread ts with the incident (see `responder.kube.threads.ThreadKeeper`)."""

    async def record(self, notice: notices.Notice, ts: str) -> bool: ...


class Truncations:
    """Alerts Alertmanager left out of its notifications (`truncatedAlerts`) not yet told in a notice.

    Shared by the webhook receiver, which counts them as they are announced, and the notifiers, which take
    the count into the next notice."""

    def __init__(self) -> None:
        self._pending = 0

    def note(self, count: int) -> None:
        self._pending += count

    def take(self) -> int:
        pending, self._pending = self._pending, 0
        return pending


class Notifiers:
    """Every notifier's outbox. Build with `from_settings(...)`; `start()`, `notify()` often, `close()` once."""

    def __init__(
        self, *, threads: ThreadRecorder | None = None, truncations: Truncations | None = None
    ) -> None:
        self._outboxes: list[outboxes.Outbox] = []
        self._threads = threads
        self._recording: set[asyncio.Task[bool]] = set()
        self._started = False
        self._truncations = truncations if truncations is not None else Truncations()

    @classmethod
    def from_settings(
        cls,
        notifier_settings: settings.NotifierSettings,
        *,
        metrics: metrics_mod.Metrics,
        threads: ThreadRecorder | None = None,
        truncations: Truncations | None = None,
        environ: Mapping[str, str] | None = None,
        clock: outboxes.Clock | None = None,
        sleep: outboxes.Sleep | None = None,
    ) -> Notifiers:
        """Build the notifiers the settings ask for, reading their secrets from files or the environment.

        Raises `config.SecretError` (naming the file or variable, never the value) when Slack is enabled but
        has neither a token nor a webhook URL, or a token but no channel.
        """
        environ = os.environ if environ is None else environ
        clock_: outboxes.Clock = clock or time.monotonic
        sleep_: outboxes.Sleep = sleep or asyncio.sleep
        notifiers = cls(threads=threads, truncations=truncations)
        slack_settings = notifier_settings.slack
        if slack_settings.enabled:
            transport: outboxes.Transport
            token = config.read_secret(
                file=slack_settings.token_file, env=slack_settings.token_env, environ=environ
            )
            if token is not None:
                if not slack_settings.channel:
                    raise config.SecretError("notifiers.slack: a bot token is set but no channel")
                transport = slack.SlackBot(
                    token=token,
                    channel=slack_settings.channel,
                    api_url=slack_settings.api_url,
                    timeout_seconds=slack_settings.timeout_seconds,
                    on_thread=notifiers.thread_started,
                )
            else:
                url = config.read_secret(
                    file=slack_settings.webhook_url_file, env=slack_settings.webhook_url_env, environ=environ
                )
                if url is None:
                    raise config.SecretError(
                        "notifiers.slack is enabled but no token (token_file/token_env) nor incoming-webhook URL "
                        "(webhook_url_file/webhook_url_env) is set"
                    )
                transport = slack.SlackWebhook(url=url, timeout_seconds=slack_settings.timeout_seconds)
            notifiers.add(
                outboxes.Outbox(
                    transport,
                    metrics=metrics,
                    max_size=slack_settings.outbox_size,
                    messages_per_second=slack_settings.messages_per_second,
                    digest_after=slack_settings.digest_after,
                    max_attempts=slack_settings.max_attempts,
                    clock=clock_,
                    sleep=sleep_,
                )
            )
        for hook in notifier_settings.webhooks:
            url = config.read_secret(file=hook.url_file, env=hook.url_env, environ=environ)
            if url is None:
                raise config.SecretError(f"notifiers.webhooks[{hook.name}]: no URL (url_file/url_env) is set")
            notifiers.add(
                outboxes.Outbox(
                    webhook.JsonWebhook(name=hook.name, url=url, timeout_seconds=hook.timeout_seconds),
                    metrics=metrics,
                    max_size=hook.outbox_size,
                    messages_per_second=hook.messages_per_second,
                    digest_after=hook.digest_after,
                    max_attempts=hook.max_attempts,
                    clock=clock_,
                    sleep=sleep_,
                )
            )
        return notifiers

    @property
    def members(self) -> tuple[outboxes.Outbox, ...]:
        """The outboxes, one per notifier."""
        return tuple(self._outboxes)

    def add(self, outbox: outboxes.Outbox) -> None:
        self._outboxes.append(outbox)
        if self._started:
            outbox.start()

    async def start(self) -> None:
        """Start each outbox's delivery task (needs the running loop)."""
        self._started = True
        for outbox in self._outboxes:
            outbox.start()

    def note_truncated(self, count: int) -> None:
        """Alertmanager left `count` alerts out of a notification: the next notice says so."""
        self._truncations.note(count)

    def notify(self, notice: notices.Notice) -> None:
        """Log the notice and queue it for every notifier. Never waits, never raises."""
        try:
            if truncated := self._truncations.take():
                notice = _with_truncation(notice, truncated)
            logger.info(
                notice.summary,
                extra={
                    "notice": notice.kind.value,
                    "incident": notice.incident,
                    "target": notice.target.key if notice.target else None,
                    "playbook": notice.playbook,
                    "action": notice.action.value if notice.action else None,
                    "outcome": notice.outcome.value if notice.outcome else None,
                    "guardrail": notice.guardrail.value if notice.guardrail else None,
                    "dry_run": notice.dry_run,
                },
            )
            for outbox in self._outboxes:
                outbox.put(notice)
        except Exception:
            # A notification problem must never turn into a failed mitigation.
            logger.exception("queueing a notification failed", extra={"incident": notice.incident})

    def thread_started(self, notice: notices.Notice, ts: str) -> None:
        """A notifier posted the first message of an incident: keep its ts with the incident, in the background."""
        if self._threads is None:
            return
        task = asyncio.create_task(self._record(notice, ts), name=f"thread:{notice.incident}")
        self._recording.add(task)
        task.add_done_callback(self._recording.discard)

    async def _record(self, notice: notices.Notice, ts: str) -> bool:
        assert self._threads is not None
        try:
            return await self._threads.record(notice, ts)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception(
                "keeping the Slack thread with the incident failed", extra={"incident": notice.incident}
            )
            return False

    async def drain(self) -> None:
        """Wait until every notice queued so far was delivered or given up on (tests, shutdown)."""
        for outbox in self._outboxes:
            await outbox.drain()
        while self._recording:
            await asyncio.gather(*self._recording, return_exceptions=True)

    async def close(self, timeout_seconds: float) -> None:
        """Deliver what is queued within `timeout_seconds` overall, then stop; leftovers are counted dropped."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_seconds
        # In parallel: a hanging Slack must not eat the time of the other notifiers.
        await asyncio.gather(*(outbox.close(timeout_seconds) for outbox in self._outboxes))
        if self._recording:
            _, pending = await asyncio.wait(self._recording, timeout=max(deadline - loop.time(), 0.0))
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        self._started = False


def _with_truncation(notice: notices.Notice, count: int) -> notices.Notice:
    # In the detail as well, which every notifier shows: the on-call must learn that alerts went unseen.
    said = (
        f"Alertmanager left {count} alert{'s' if count != 1 else ''} out of its notifications since the last "
        "notice (truncatedAlerts): they never reached oom-responder; raise max_alerts on its receiver."
    )
    return dataclasses.replace(
        notice, truncated_alerts=count, detail=f"{notice.detail}\n{said}" if notice.detail else said
    )
