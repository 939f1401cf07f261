"""Slack transports on slack-sdk: a bot token (`chat.postMessage`, threads) or an incoming webhook (no threads).

The edge to Slack. Follow-ups of an incident go into the thread of its first message: the thread ts comes
from the notice (recovered from the workload's ledger) or from this process's memory, and a newly started
thread is reported through `on_thread` so the engine can keep it with the incident.

Secrets: the token and the webhook URL live only inside the slack-sdk clients. slack-sdk logs request URLs
and headers at debug level, so its clients get a disabled logger of their own; every failure is
re-raised as a `DeliveryError` built from the status and Slack's error code, never from the original
exception's text (an aiohttp error can carry the webhook URL). Retries and pacing are the outbox's job:
the clients get no retry handlers, so a 429 never stalls inside slack-sdk.
It must not render messages beyond calling `blocks`, nor queue or sleep.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

import aiohttp
import cachetools
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from responder.models import decisions, notices
from responder.notifiers import blocks, outboxes

__all__ = ["FOLLOW_UPS", "SlackBot", "SlackWebhook"]

# slack-sdk writes URLs (a webhook URL is a secret) and request headers (the bot token) at DEBUG and INFO.
# Its clients get a logger outside the logging tree, disabled, so no logging configuration can turn that on;
# failures are reported by the outbox from `DeliveryError`s instead.
_sdk_logger = logging.Logger("responder.notifiers.slack_sdk", level=logging.CRITICAL)
_sdk_logger.disabled = True

FOLLOW_UPS = frozenset(
    {notices.NoticeKind.VERIFICATION, notices.NoticeKind.REPEAT, notices.NoticeKind.RESOLVED}
)
"""Kinds that only ever make sense inside an incident's thread."""

OnThread = Callable[[notices.Notice, str], None]
"""Called with each notice whose incident just got its first message, and that message's ts."""


def _retry_after(headers: Mapping[str, str] | None) -> float:
    raw = (headers or {}).get("Retry-After") or (headers or {}).get("retry-after")
    try:
        return max(float(raw), 0.0) if raw is not None else 1.0
    except ValueError:
        return 1.0


def _from_status(status: int, error: str, *, headers: Mapping[str, str] | None) -> outboxes.DeliveryError:
    if status == 429:
        return outboxes.DeliveryError(
            f"rate limited (429 {error})", retriable=True, retry_after_seconds=_retry_after(headers)
        )
    return outboxes.DeliveryError(f"HTTP {status} {error}".strip(), retriable=status >= 500)


def _from_exception(e: BaseException) -> outboxes.DeliveryError:
    # The class name only: str(e) of an aiohttp error may contain the URL, and the URL may be the secret.
    if isinstance(e, TimeoutError):
        return outboxes.DeliveryError("timed out", retriable=True)
    return outboxes.DeliveryError(f"connection failed ({type(e).__name__})", retriable=True)


_Client = TypeVar("_Client")


class _Sdk(Generic[_Client]):
    """A slack-sdk client on its own aiohttp session, made on first use (it needs the running loop), without
    the SDK's own retries (the outbox paces and retries) and closed with its notifier."""

    def __init__(
        self, make: Callable[[aiohttp.ClientSession, int], _Client], *, timeout_seconds: float
    ) -> None:
        self._make = make
        self._timeout_seconds = timeout_seconds
        self._session: aiohttp.ClientSession | None = None
        self._client: _Client | None = None

    def get(self) -> _Client:
        if self._client is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout_seconds))
            # The SDK takes whole seconds.
            self._client = self._make(self._session, max(int(self._timeout_seconds), 1))
        return self._client

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        self._session = None
        self._client = None


class SlackBot:
    """chat.postMessage with a bot token (`xoxb-…`) to one channel; threads follow-ups per incident."""

    def __init__(
        self,
        *,
        token: str,
        channel: str,
        api_url: str = "https://slack.com/api/",
        timeout_seconds: float = 10.0,
        on_thread: OnThread | None = None,
        max_threads: int = 10_000,
        name: str = "slack",
    ) -> None:
        self._name = name
        self._channel = channel
        self._timeout_seconds = timeout_seconds
        self._on_thread = on_thread
        self._threads: cachetools.LRUCache[str, str] = cachetools.LRUCache(maxsize=max_threads)
        self._sdk = _Sdk(
            lambda session, timeout: AsyncWebClient(
                token=token,
                base_url=api_url,
                timeout=timeout,
                session=session,
                logger=_sdk_logger,
                retry_handlers=[],
            ),
            timeout_seconds=timeout_seconds,
        )

    def __repr__(self) -> str:
        # Never the token.
        return f"SlackBot(channel={self._channel!r})"

    @property
    def name(self) -> str:
        return self._name

    def thread_of(self, incident: str) -> str | None:
        """The ts of the incident's first message, as this process knows it."""
        return self._threads.get(incident)

    async def close(self) -> None:
        await self._sdk.close()

    async def deliver(self, batch: Sequence[notices.Notice], *, digest: bool) -> None:
        if digest:
            ts = await self._post(blocks.render_digest(batch), thread_ts=None, broadcast=False)
            # Follow-ups of these incidents reply under the digest. It is kept in memory only: writing a ledger
            # per notice during a storm would add API load exactly when the cluster is struggling.
            for notice in batch:
                if self.thread_of(notice.incident) is None and not notice.thread:
                    self._threads[notice.incident] = ts
            return
        (notice,) = batch
        thread = notice.thread or self.thread_of(notice.incident)
        message = blocks.render(notice, in_thread=thread is not None)
        # Escalations and failed verifications must be seen, not buried in a thread: broadcast them too.
        broadcast = thread is not None and (
            notice.kind is notices.NoticeKind.ESCALATION
            or (notice.kind is notices.NoticeKind.VERIFICATION and notice.outcome is decisions.Outcome.FAILED)
        )
        try:
            ts = await self._post(message, thread_ts=thread, broadcast=broadcast)
        except outboxes.DeliveryError as e:
            if thread is None or str(e) != "thread_not_found":
                raise
            # The recovered thread is gone (deleted message, other channel): start a new one instead.
            self._threads.pop(notice.incident, None)
            thread = None
            ts = await self._post(blocks.render(notice), thread_ts=None, broadcast=False)
        if thread is None:
            self._remember([notice], ts)
        elif notice.incident not in self._threads:
            self._threads[notice.incident] = thread

    def _remember(self, batch: Sequence[notices.Notice], ts: str) -> None:
        for notice in batch:
            self._threads[notice.incident] = ts
            if self._on_thread is not None:
                try:
                    self._on_thread(notice, ts)
                except Exception:
                    logger = logging.getLogger(__name__)
                    logger.exception("recording the Slack thread failed", extra={"incident": notice.incident})

    async def _post(self, message: blocks.Message, *, thread_ts: str | None, broadcast: bool) -> str:
        client = self._sdk.get()
        kwargs: dict[str, Any] = {"channel": self._channel, "text": message.text, "blocks": message.blocks}
        if thread_ts is not None:
            kwargs["thread_ts"] = thread_ts
            if broadcast:
                kwargs["reply_broadcast"] = True
        try:
            async with asyncio.timeout(self._timeout_seconds):
                response = await client.chat_postMessage(unfurl_links=False, unfurl_media=False, **kwargs)
        except SlackApiError as e:
            status = int(getattr(e.response, "status_code", 0) or 0)
            data = getattr(e.response, "data", None)
            error = str(data.get("error", "")) if isinstance(data, dict) else ""
            if status == 200:
                # Slack answers its own errors (invalid_auth, channel_not_found, invalid_blocks) with 200.
                retriable = error in (
                    "internal_error",
                    "fatal_error",
                    "service_unavailable",
                    "request_timeout",
                )
                raise outboxes.DeliveryError(error or "unknown_error", retriable=retriable) from None
            headers = getattr(e.response, "headers", None)
            raise _from_status(status, error, headers=headers) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise _from_exception(e) from None
        ts = response.get("ts")
        if not isinstance(ts, str):
            raise outboxes.DeliveryError("answer without ts", retriable=False)
        return ts


class SlackWebhook:
    """An incoming-webhook URL: one channel chosen when the webhook was made, no threads, no ts."""

    def __init__(self, *, url: str, timeout_seconds: float = 10.0, name: str = "slack") -> None:
        self._name = name
        self._timeout_seconds = timeout_seconds
        self._sdk = _Sdk(
            lambda session, timeout: AsyncWebhookClient(
                url=url, timeout=timeout, session=session, logger=_sdk_logger, retry_handlers=[]
            ),
            timeout_seconds=timeout_seconds,
        )

    def __repr__(self) -> str:
        # Never the URL: its path is the credential.
        return "SlackWebhook()"

    @property
    def name(self) -> str:
        return self._name

    async def close(self) -> None:
        await self._sdk.close()

    async def deliver(self, batch: Sequence[notices.Notice], *, digest: bool) -> None:
        message = blocks.render_digest(batch) if digest else blocks.render(batch[0])
        client = self._sdk.get()
        try:
            async with asyncio.timeout(self._timeout_seconds):
                response = await client.send(text=message.text, blocks=message.blocks)
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise _from_exception(e) from None
        if response.status_code != 200:
            # The body is Slack's error code (invalid_blocks, no_service, channel_is_archived): safe to show.
            error = (response.body or "")[:100] if response.status_code < 500 else ""
            raise _from_status(response.status_code, error, headers=response.headers)
