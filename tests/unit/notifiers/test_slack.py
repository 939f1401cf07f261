"""Slack delivery through `Notifiers` against the local Slack stand-in (no real Slack).

Aspects covered:
* the message for each alert kind and outcome is accepted by the stand-in (auth header, channel, blocks);
* follow-ups (verification, repeat, resolved) go into the incident's thread; escalations are broadcast;
* threading across a restart: a new `Notifiers` posts into the thread recovered from the ledger (`Notice.thread`);
  a stale thread ts starts a new thread instead of losing the message;
* a new thread is handed to the thread recorder, so it can be kept with the incident;
* a storm becomes a digest; pacing sleeps between messages;
* 429: the Retry-After is honoured and the message delivered; 5xx and timeouts are retried with backoff;
* a Slack outage never blocks `notify()`; a full outbox drops the oldest and counts it;
* incoming webhooks: messages arrive, follow-ups without threads;
* secrets: the token and the webhook URL appear in no log record and no error, even when Slack fails;
* configuration: secrets from env or file; missing secrets are reported without values.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from responder import config
from responder import metrics as metrics_mod
from responder.engine import notifying
from responder.models import decisions, notices, settings
from responder.notifiers import blocks, outboxes, slack
from tests.slackstub import samples, support
from tests.slackstub.fixtures import CHANNEL, TOKEN, Stub

Factory = Callable[..., notifying.Notifiers]


class RecordingThreads:
    """A thread recorder that keeps what it is told in memory (the ledger-backed one has its own tests)."""

    def __init__(self) -> None:
        self.recorded: dict[str, str] = {}

    async def record(self, notice: notices.Notice, ts: str) -> bool:
        self.recorded[notice.incident] = ts
        return True


@pytest.fixture
async def make_notifiers(
    slack: Stub, metrics: metrics_mod.Metrics, fake_time: support.FakeTime
) -> AsyncIterator[Factory]:
    made: list[notifying.Notifiers] = []

    def make(
        *,
        webhook: bool = False,
        threads: notifying.ThreadRecorder | None = None,
        token: str = TOKEN,
        **slack_options: object,
    ) -> notifying.Notifiers:
        options: dict[str, object] = {"enabled": True, "channel": CHANNEL, "api_url": slack.api_url}
        options.update(slack_options)
        environ = {"OOM_RESPONDER_SLACK_WEBHOOK_URL": slack.webhook_url} if webhook else {"SLACK": token}
        if not webhook:
            options["token_env"] = "SLACK"
        notifiers = notifying.Notifiers.from_settings(
            settings.NotifierSettings(slack=settings.SlackSettings.model_validate(options)),
            metrics=metrics,
            threads=threads,
            environ=environ,
            clock=fake_time.clock,
            sleep=fake_time.sleep,
        )
        made.append(notifiers)
        return notifiers

    yield make
    slack.stub.release()
    for notifiers in made:
        await notifiers.close(5)


async def _deliver(notifiers: notifying.Notifiers, *batch: notices.Notice) -> None:
    await notifiers.start()
    for notice in batch:
        notifiers.notify(notice)
    await notifiers.drain()


@pytest.mark.parametrize("title", list(samples.previews()), ids=list(samples.previews()))
async def test_each_alert_kind_and_outcome_is_delivered_as_rendered(
    title: str, slack: Stub, make_notifiers: Factory, metrics: metrics_mod.Metrics
) -> None:
    notice = samples.previews()[title]
    await _deliver(make_notifiers(), notice)
    assert slack.stub.rejections == []
    (posted,) = slack.stub.posted
    expected = blocks.render(notice)
    assert posted.channel == CHANNEL
    assert posted.token == TOKEN
    assert posted.blocks == expected.blocks
    assert posted.text == expected.text
    assert support.count(metrics, "slack", "sent") == 1


async def test_follow_ups_go_into_the_incidents_thread(slack: Stub, make_notifiers: Factory) -> None:
    first = samples.notice()
    follow_ups = [
        samples.notice(notices.NoticeKind.VERIFICATION, outcome=decisions.Outcome.DONE),
        samples.notice(notices.NoticeKind.REPEAT),
        samples.notice(notices.NoticeKind.RESOLVED),
    ]
    other = samples.notice(incident="other@2024")
    await _deliver(make_notifiers(digest_after=10), first, *follow_ups, other)
    assert slack.stub.rejections == []
    top = slack.stub.top_level()
    assert len(top) == 2
    thread = slack.stub.in_thread(top[0].ts)
    assert not any(p.reply_broadcast for p in thread)
    assert all(
        p.blocks == blocks.render(n, in_thread=True).blocks for p, n in zip(thread, follow_ups, strict=True)
    )


async def test_escalation_and_failed_verification_in_a_thread_are_broadcast(
    slack: Stub, make_notifiers: Factory
) -> None:
    escalation = samples.previews()["PodRestartingFrequently: escalated to humans"]
    failed = samples.previews()["Verification failed (in the thread)"]
    await _deliver(
        make_notifiers(),
        samples.notice(),
        dataclasses.replace(escalation, incident=samples.notice().incident),
        failed,
    )
    first, *replies = slack.stub.posted
    assert [p.thread_ts for p in replies] == [first.ts, first.ts]
    assert all(p.reply_broadcast for p in replies)


async def test_new_threads_are_handed_to_the_recorder(slack: Stub, make_notifiers: Factory) -> None:
    threads = RecordingThreads()
    first = samples.notice()
    await _deliver(make_notifiers(threads=threads), first, samples.notice(notices.NoticeKind.RESOLVED))
    assert threads.recorded == {first.incident: slack.stub.posted[0].ts}


async def test_threading_survives_a_restart_through_the_recovered_thread_ts(
    slack: Stub, make_notifiers: Factory
) -> None:
    threads = RecordingThreads()
    first = samples.notice()
    before = make_notifiers(threads=threads)
    await _deliver(before, first)
    await before.close(5)
    # A new process knows nothing in memory; the engine fills Notice.thread from the workload's ledger.
    after = make_notifiers()
    recovered = threads.recorded[first.incident]
    await _deliver(after, samples.notice(notices.NoticeKind.VERIFICATION, thread=recovered))
    assert slack.stub.rejections == []
    (reply,) = slack.stub.in_thread(slack.stub.posted[0].ts)
    assert reply.thread_ts == recovered


async def test_a_stale_thread_starts_a_new_thread_instead_of_losing_the_message(
    slack: Stub, make_notifiers: Factory, metrics: metrics_mod.Metrics
) -> None:
    await _deliver(make_notifiers(), samples.notice(notices.NoticeKind.REPEAT, thread="1600000000.000001"))
    assert [r["error"] for r in slack.stub.rejections] == ["thread_not_found"]
    (posted,) = slack.stub.posted
    assert posted.thread_ts is None
    assert support.count(metrics, "slack", "sent") == 1


async def test_a_storm_is_sent_as_a_digest(
    slack: Stub, make_notifiers: Factory, metrics: metrics_mod.Metrics, fake_time: support.FakeTime
) -> None:
    notifiers = make_notifiers(digest_after=5)
    await notifiers.start()
    slack.stub.hold()
    slack.stub.received.clear()
    notifiers.notify(samples.notice(incident="first@t"))
    await slack.stub.received.wait()
    # While Slack is busy with the first message, twenty more arrive within the same second.
    storm = [samples.notice(incident=f"storm{i}@t") for i in range(20)]
    for notice in storm:
        notifiers.notify(notice)
    slack.stub.release()
    await notifiers.drain()
    assert slack.stub.rejections == []
    first, digest = slack.stub.posted
    assert "memory limit raised" in _header_of(first.blocks)
    assert "digest: 20 notices" in _header_of(digest.blocks)
    assert support.count(metrics, "slack", "sent") == 1
    assert support.count(metrics, "slack", "digested") == 20
    assert fake_time.sleeps == [1.0], "the digest waited for its turn: one message per second"


async def test_pacing_spaces_messages_one_second_apart(
    slack: Stub, make_notifiers: Factory, fake_time: support.FakeTime
) -> None:
    await _deliver(make_notifiers(digest_after=10), *[samples.notice(incident=f"i{n}@t") for n in range(3)])
    assert len(slack.stub.posted) == 3
    assert fake_time.sleeps == [1.0, 1.0]


async def test_a_429_is_retried_after_its_retry_after(
    slack: Stub, make_notifiers: Factory, metrics: metrics_mod.Metrics, fake_time: support.FakeTime
) -> None:
    slack.stub.fail(status=429, retry_after=7)
    await _deliver(make_notifiers(), samples.notice())
    assert slack.stub.requests == 2
    assert len(slack.stub.posted) == 1
    assert fake_time.sleeps == [7.0]
    assert support.count(metrics, "slack", "sent") == 1
    assert support.count(metrics, "slack", "failed") == 0


async def test_server_errors_are_retried_with_backoff(
    slack: Stub, make_notifiers: Factory, metrics: metrics_mod.Metrics, fake_time: support.FakeTime
) -> None:
    slack.stub.fail(status=500, times=2)
    await _deliver(make_notifiers(), samples.notice())
    assert len(slack.stub.posted) == 1
    assert fake_time.sleeps == [1.0, 2.0]
    assert support.count(metrics, "slack", "sent") == 1


async def test_a_message_failing_every_attempt_is_counted_failed_and_later_ones_still_go(
    slack: Stub, make_notifiers: Factory, metrics: metrics_mod.Metrics
) -> None:
    slack.stub.fail(status=503, times=3)
    await _deliver(make_notifiers(max_attempts=3), samples.notice(), samples.notice(incident="next@t"))
    assert support.count(metrics, "slack", "failed") == 1
    assert support.count(metrics, "slack", "sent") == 1
    assert len(slack.stub.posted) == 1


async def test_a_timeout_is_retried(
    slack: Stub, make_notifiers: Factory, metrics: metrics_mod.Metrics
) -> None:
    slack.stub.hang()
    await _deliver(make_notifiers(timeout_seconds=0.2), samples.notice())
    slack.stub.release()
    assert len(slack.stub.posted) == 1
    assert support.count(metrics, "slack", "sent") == 1


async def test_notify_never_waits_for_a_hanging_slack_and_a_full_outbox_drops_the_oldest(
    slack: Stub, make_notifiers: Factory, metrics: metrics_mod.Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    notifiers = make_notifiers(outbox_size=3, timeout_seconds=60)
    await notifiers.start()
    slack.stub.hang(times=100)
    slack.stub.received.clear()
    notifiers.notify(samples.notice(incident="in-flight@t"))
    await slack.stub.received.wait()
    # Slack hangs; mitigations keep notifying. notify() is synchronous (not a coroutine): it cannot wait on
    # Slack, and returns having queued or dropped.
    assert not inspect.iscoroutinefunction(notifiers.notify)
    for i in range(10):
        notifiers.notify(samples.notice(incident=f"queued{i}@t"))
    assert support.count(metrics, "slack", "dropped") == 7
    (outbox,) = notifiers.members
    assert len(outbox) == 3
    assert "notification dropped: outbox full" in caplog.text
    await notifiers.close(0.1)
    # What was still waiting at shutdown is dropped and counted, not lost silently.
    assert support.count(metrics, "slack", "dropped") == 10


async def test_incoming_webhook_posts_and_follow_ups_arrive_without_threads(
    slack: Stub, make_notifiers: Factory, metrics: metrics_mod.Metrics
) -> None:
    notices_ = [samples.notice(), samples.notice(notices.NoticeKind.RESOLVED)]
    await _deliver(make_notifiers(webhook=True), *notices_)
    assert slack.stub.rejections == []
    assert [p.via for p in slack.stub.posted] == ["webhook", "webhook"]
    assert [p.blocks for p in slack.stub.posted] == [blocks.render(n).blocks for n in notices_]
    assert support.count(metrics, "slack", "sent") == 2


async def test_incoming_webhook_429_is_honoured(
    slack: Stub, make_notifiers: Factory, fake_time: support.FakeTime
) -> None:
    slack.stub.fail(status=429, retry_after=3)
    await _deliver(make_notifiers(webhook=True), samples.notice())
    assert len(slack.stub.posted) == 1
    assert fake_time.sleeps == [3.0]


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Capture everything at DEBUG, including slack-sdk's and aiohttp's own loggers."""
    caplog.set_level(logging.DEBUG)
    for name in ("slack_sdk", "responder", "aiohttp"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def _log_text(caplog: pytest.LogCaptureFixture) -> str:
    parts = []
    for record in caplog.records:
        if record.name == "aiohttp.access":
            continue  # the stand-in's own access log: Slack's side, not ours
        parts.append(record.getMessage())
        parts.extend(str(value) for value in record.__dict__.values())
        if record.exc_info and record.exc_info[1] is not None:
            parts.append(repr(record.exc_info[1]))
    return "\n".join(parts)


async def test_token_never_appears_in_logs_or_errors_when_slack_rejects_it(
    slack: Stub, make_notifiers: Factory, metrics: metrics_mod.Metrics, all_logs: pytest.LogCaptureFixture
) -> None:
    wrong = "xoxb-wrong-but-secret-123"
    await _deliver(make_notifiers(token=wrong), samples.notice())
    assert [r["error"] for r in slack.stub.rejections] == ["invalid_auth"]
    assert support.count(metrics, "slack", "failed") == 1
    text = _log_text(all_logs)
    assert "invalid_auth" in text
    assert wrong not in text


async def test_token_never_appears_in_logs_when_slack_fails_and_times_out(
    slack: Stub, make_notifiers: Factory, all_logs: pytest.LogCaptureFixture
) -> None:
    slack.stub.fail(status=500)
    slack.stub.hang()
    await _deliver(make_notifiers(timeout_seconds=0.2), samples.notice())
    slack.stub.release()
    assert len(slack.stub.posted) == 1
    text = _log_text(all_logs)
    assert "timed out" in text
    assert TOKEN not in text


async def test_webhook_url_never_appears_in_logs_or_errors(
    slack: Stub, make_notifiers: Factory, all_logs: pytest.LogCaptureFixture
) -> None:
    slack.stub.fail(status=500)
    await _deliver(make_notifiers(webhook=True, max_attempts=1), samples.notice())
    notifiers = make_notifiers(webhook=True)
    secret_path = "/services/T000/B000/webhooksecret"
    text = _log_text(all_logs)
    assert "HTTP 500" in text
    assert secret_path not in text
    assert "webhooksecret" not in repr(notifiers.members[0].transport)


async def test_delivery_errors_do_not_carry_the_url_of_an_unreachable_webhook() -> None:
    url = "http://127.0.0.1:9/services/T1/B1/verysecret"
    transport = slack.SlackWebhook(url=url, timeout_seconds=2)
    try:
        with pytest.raises(outboxes.DeliveryError) as raised:
            await transport.deliver([samples.notice()], digest=False)
    finally:
        await transport.close()
    assert raised.value.retriable
    assert "verysecret" not in str(raised.value)
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__


def test_enabled_slack_without_secrets_is_a_configuration_error_naming_no_value() -> None:
    slack_settings = settings.SlackSettings(enabled=True, channel=CHANNEL)
    with pytest.raises(config.SecretError, match="token_env"):
        notifying.Notifiers.from_settings(
            settings.NotifierSettings(slack=slack_settings), metrics=metrics_mod.Metrics(), environ={}
        )


def test_a_token_without_a_channel_is_a_configuration_error() -> None:
    with pytest.raises(config.SecretError, match="no channel") as raised:
        notifying.Notifiers.from_settings(
            settings.NotifierSettings(slack=settings.SlackSettings(enabled=True)),
            metrics=metrics_mod.Metrics(),
            environ={"OOM_RESPONDER_SLACK_TOKEN": "xoxb-secret-value"},
        )
    assert "xoxb-secret-value" not in str(raised.value)


def test_secrets_are_read_from_files(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("xoxb-from-file\n")
    notifiers = notifying.Notifiers.from_settings(
        settings.NotifierSettings(
            slack=settings.SlackSettings(enabled=True, channel=CHANNEL, token_file=str(token_file))
        ),
        metrics=metrics_mod.Metrics(),
        environ={},
    )
    (outbox,) = notifiers.members
    assert isinstance(outbox.transport, slack.SlackBot)
    assert "xoxb-from-file" not in repr(outbox.transport)


def test_disabled_slack_and_no_webhooks_means_no_notifiers_but_notify_still_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="responder.engine.notifying")
    notifiers = notifying.Notifiers.from_settings(settings.NotifierSettings(), metrics=metrics_mod.Metrics())
    assert notifiers.members == ()
    notifiers.notify(samples.notice())
    assert "Raised the memory limit of payments/checkout" in caplog.text


def _header_of(posted_blocks: list[dict[str, object]]) -> str:
    header = posted_blocks[0]
    assert header["type"] == "header"
    text = header["text"]
    assert isinstance(text, dict)
    return str(text["text"])


async def test_notify_before_start_is_delivered_once_started(slack: Stub, make_notifiers: Factory) -> None:
    notifiers = make_notifiers()
    notifiers.notify(samples.notice())
    await asyncio.sleep(0)
    assert slack.stub.posted == []
    await notifiers.start()
    await notifiers.drain()
    assert len(slack.stub.posted) == 1


async def test_follow_ups_of_digested_incidents_reply_under_the_digest_without_ledger_writes(
    slack: Stub, make_notifiers: Factory
) -> None:
    threads = RecordingThreads()
    notifiers = make_notifiers(threads=threads, digest_after=3)
    storm = [samples.notice(incident=f"storm{i}@t") for i in range(5)]
    await _deliver(notifiers, *storm)
    await _deliver(notifiers, samples.notice(notices.NoticeKind.RESOLVED, incident="storm2@t"))
    digest, reply = slack.stub.posted
    assert "digest: 5 notices" in _header_of(digest.blocks)
    assert reply.thread_ts == digest.ts
    assert threads.recorded == {}
