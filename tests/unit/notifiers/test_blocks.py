"""Block Kit rendering of notices (responder/notifiers/blocks.py), checked with the Slack stand-in's validator.

Aspects covered:
* every alert kind and outcome renders within Slack's limits, with severity and alert name in the header;
* what was done (from → to), or would be done with a dry-run marker;
* why: alert summary and description, playbook, the guardrail that blocked it;
* links: the alert's generatorURL, the runbook_url annotation, an Alertmanager silence link with matchers;
* the verification outcome;
* limits: 50 blocks, 3000 characters per section text, 150 per header, truncation with an ellipsis;
* alert text cannot inject Slack mentions or links (mrkdwn is escaped);
* digests of storms stay within the limits and count what they do not show.
"""

from __future__ import annotations

import dataclasses
import json
import re
import urllib.parse
from typing import Any

import pytest

from responder.models import decisions, notices, settings
from responder.notifiers import blocks
from tests.slackstub import samples, server


def _texts(message: blocks.Message) -> str:
    """Every text of a message, joined: what a reader sees."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key in ("text", "url") and isinstance(item, str):
                    found.append(item)
                else:
                    walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(message.blocks)
    return "\n".join(found)


def _header(message: blocks.Message) -> str:
    (header,) = [block for block in message.blocks if block["type"] == "header"]
    text = header["text"]["text"]
    assert isinstance(text, str)
    return text


def _buttons(message: blocks.Message) -> dict[str, str]:
    return {
        element["action_id"]: element["url"]
        for block in message.blocks
        if block["type"] == "actions"
        for element in block["elements"]
    }


@pytest.mark.parametrize("title", list(samples.previews()), ids=list(samples.previews()))
def test_every_preview_is_a_message_slack_accepts(title: str) -> None:
    message = blocks.render(samples.previews()[title])
    assert server.validate_blocks(message.blocks) == []
    assert message.text


@pytest.mark.parametrize(
    ("alert", "name", "severity"),
    [
        pytest.param(settings.AlertKind.OOM_KILLED, "OOMKilled", "CRITICAL", id="oom"),
        pytest.param(settings.AlertKind.MEMORY_HIGH, "PodMemoryHigh", "WARNING", id="memory-high"),
        pytest.param(
            settings.AlertKind.RESTARTING_FREQUENTLY, "PodRestartingFrequently", "WARNING", id="restarts"
        ),
    ],
)
def test_header_names_severity_and_alert(alert: settings.AlertKind, name: str, severity: str) -> None:
    header = _header(blocks.render(samples.notice(alert=alert)))
    assert severity in header
    assert name in header


def test_action_shows_where_and_the_change_from_to() -> None:
    message = blocks.render(samples.notice())
    texts = _texts(message)
    assert "`payments`" in texts
    assert "Deployment `checkout`" in texts
    assert "512Mi → 640Mi" in texts
    assert "*Change*" in texts
    assert "memory limit raised" in _header(message)


def test_dry_run_is_marked_in_header_and_body_and_says_would() -> None:
    message = blocks.render(samples.previews()["Dry run"])
    assert "DRY RUN" in _header(message)
    assert "would raise the memory limit" in _header(message)
    texts = _texts(message)
    assert "*DRY RUN*" in texts
    assert "*Would change*\n512Mi → 640Mi" in texts
    assert "following the rollout" not in texts


def test_why_carries_alert_summary_description_and_playbook() -> None:
    texts = _texts(blocks.render(samples.notice()))
    assert "*Alert:* Container app in payments/checkout-7d9f8b6c5-x2x7q was OOMKilled" in texts
    assert ">The container was killed with exit code 137" in texts
    assert "*Playbook:* `oom-raise-memory` step `raise_memory`" in texts


def test_guardrail_block_names_the_guardrail_and_explains_it() -> None:
    message = blocks.render(samples.previews()["Blocked by a guardrail"])
    assert "blocked by guardrail ceiling" in _header(message)
    texts = _texts(message)
    assert "*Blocked by guardrail* `ceiling`" in texts
    assert "max memory" in texts
    assert "oom-responder.io/max-memory on the Deployment is 2Gi." in texts


def test_refusal_without_guardrail_names_the_reason() -> None:
    notice = samples.notice(
        notices.NoticeKind.REFUSAL, reason=decisions.Reason.QUOTA_REFUSED, outcome=decisions.Outcome.FAILED
    )
    message = blocks.render(notice)
    assert "not done: quota refused" in _header(message)
    assert "*Reason:* `quota_refused`" in _texts(message)


def test_links_point_at_source_runbook_and_a_prefilled_silence() -> None:
    buttons = _buttons(blocks.render(samples.notice()))
    assert buttons["source"].startswith("http://prometheus.monitoring.svc:9090/graph")
    assert buttons["runbook"] == "https://runbooks.example.com/RB-010#step-2"
    silence = buttons["silence"]
    assert silence.startswith(f"{samples.EXTERNAL_URL}/#/silences/new?filter=")
    matchers = urllib.parse.unquote(silence.split("filter=", 1)[1])
    assert matchers == (
        '{alertname="OOMKilled",container="app",namespace="payments",'
        'pod="checkout-7d9f8b6c5-x2x7q",severity="critical"}'
    )


def test_silence_link_escapes_quotes_and_backslashes_in_label_values() -> None:
    url = blocks.silence_url("http://am:9093/", {"alertname": "X", "path": 'a"b\\c'})
    assert url is not None
    assert urllib.parse.unquote(url.split("filter=", 1)[1]) == '{alertname="X",path="a\\"b\\\\c"}'
    assert url.startswith("http://am:9093/#/silences/new")


def test_no_links_without_urls() -> None:
    event = dataclasses.replace(samples.event(), generator_url="", external_url="", annotations={})
    message = blocks.render(samples.notice(event=event))
    assert _buttons(message) == {}
    assert server.validate_blocks(message.blocks) == []


def test_links_that_are_not_http_are_left_out() -> None:
    event = dataclasses.replace(samples.event(), generator_url="javascript:alert(1)")
    assert "source" not in _buttons(blocks.render(samples.notice(event=event)))


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        pytest.param(decisions.Outcome.FAILED, "*Verification failed*", id="failed"),
        pytest.param(decisions.Outcome.DONE, "*Verified*: the rollout finished", id="done"),
    ],
)
def test_verification_outcome_is_shown(outcome: decisions.Outcome, expected: str) -> None:
    message = blocks.render(samples.notice(notices.NoticeKind.VERIFICATION, outcome=outcome))
    assert expected in _texts(message)


def test_failed_verification_carries_the_cluster_detail() -> None:
    message = blocks.render(samples.previews()["Verification failed (in the thread)"])
    assert "verification FAILED" in _header(message)
    assert "exceeded quota: mem-quota" in _texts(message)


def test_alert_text_cannot_mention_everyone_or_hide_links() -> None:
    event = dataclasses.replace(
        samples.event(),
        annotations={"summary": "<!channel> see <http://evil|here> & more"},
    )
    texts = _texts(blocks.render(samples.notice(event=event)))
    assert "<!channel>" not in texts
    assert "&lt;!channel&gt; see &lt;http://evil|here&gt; &amp; more" in texts


def test_long_texts_are_truncated_with_an_ellipsis_to_slacks_limits() -> None:
    event = dataclasses.replace(
        samples.event(),
        alertname="A" * 400,
        annotations={"summary": "s" * 5000, "description": "d" * 5000},
    )
    message = blocks.render(samples.notice(event=event, detail="x" * 5000, summary="y" * 5000))
    assert server.validate_blocks(message.blocks) == []
    header = _header(message)
    assert len(header) == blocks.MAX_HEADER_CHARS
    assert header.endswith(blocks.ELLIPSIS)
    sections = [
        block["text"]["text"] for block in message.blocks if block["type"] == "section" and "text" in block
    ]
    assert max(len(text) for text in sections) == blocks.MAX_SECTION_CHARS
    assert any(text.endswith(blocks.ELLIPSIS) for text in sections)


def test_truncation_never_leaves_half_an_escape() -> None:
    text = blocks.escape("a" * 8 + "&")  # "aaaaaaaa&amp;"
    assert blocks.truncate(text, 11) == "a" * 8 + blocks.ELLIPSIS
    assert blocks.truncate("short", 10) == "short"


def test_enforce_limits_keeps_fifty_blocks_and_says_how_many_are_hidden() -> None:
    many = [{"type": "section", "text": {"type": "mrkdwn", "text": f"line {i}"}} for i in range(80)]
    limited = blocks.enforce_limits(many)
    assert len(limited) == blocks.MAX_BLOCKS
    assert limited[-1]["elements"][0]["text"] == "…31 more blocks not shown."
    assert server.validate_blocks(limited) == []


def test_enforce_limits_cuts_fields_and_button_texts_and_deduplicates_block_ids() -> None:
    raw: list[dict[str, Any]] = [
        {"type": "section", "block_id": "x", "fields": [{"type": "mrkdwn", "text": "f" * 2500}] * 12},
        {"type": "section", "block_id": "x", "text": {"type": "mrkdwn", "text": "ok"}},
        {
            "type": "actions",
            "elements": [
                {"type": "button", "text": {"type": "plain_text", "text": "b" * 100}, "url": "http://x"}
            ],
        },
    ]
    assert server.validate_blocks(raw) != []
    limited = blocks.enforce_limits(raw)
    assert server.validate_blocks(limited) == []
    assert len(limited[0]["fields"]) == blocks.MAX_FIELDS
    assert "block_id" not in limited[1]
    assert raw[0]["fields"][0]["text"] == "f" * 2500, "the input is not modified"


def test_digest_of_a_storm_stays_within_limits_and_counts_what_is_not_shown() -> None:
    storm = [samples.notice(incident=f"fp{i}@t", summary=f"n{i}") for i in range(1000)]
    message = blocks.render_digest(storm, window_seconds=3)
    assert server.validate_blocks(message.blocks) == []
    assert len(message.blocks) <= blocks.MAX_BLOCKS
    assert "1000 notices within 3s" in _header(message)
    texts = _texts(message)
    shown = texts.count("memory limit raised")
    more = re.search(r"…and (\d+) more not shown\.", texts)
    assert more is not None
    assert shown + int(more.group(1)) == 1000
    assert len(json.dumps(message.blocks)) < 200_000


def test_small_digest_shows_every_notice() -> None:
    batch = [samples.notice(incident=f"fp{i}@t") for i in range(7)]
    texts = _texts(blocks.render_digest(batch))
    assert texts.count("`payments/checkout` 512Mi → 640Mi") == 7
    assert "more not shown" not in texts


def test_a_thread_reply_leaves_out_what_the_first_message_shows() -> None:
    notice = samples.previews()["Verification failed (in the thread)"]
    reply = blocks.render(notice, in_thread=True)
    assert server.validate_blocks(reply.blocks) == []
    texts = _texts(reply)
    assert _buttons(reply) == {}
    assert "*Namespace*" not in texts
    assert "*Alert:*" not in texts
    assert "512Mi → 640Mi" in texts
    assert "exceeded quota: mem-quota" in texts
    assert "verification FAILED" in _header(reply)
    standalone = _texts(blocks.render(notice))
    assert "*Namespace*" in standalone
    assert "*Alert:*" in standalone


def test_previous_log_lines_are_a_code_block_escaped_and_cut_honestly() -> None:
    lines = tuple(f"2026-03-01T09:27:{i:02d}Z heap <{i}> & more " + "x" * 200 for i in range(40))
    message = blocks.render(samples.notice(log_lines=lines), in_thread=True)
    [section] = [b for b in message.blocks if "text" in b and "Previous log" in b["text"]["text"]]
    text = section["text"]["text"]
    assert len(text) <= blocks.MAX_SECTION_CHARS
    assert text.count("```") == 2
    assert "&lt;39&gt; &amp; more" in text and "<39>" not in text
    dropped = int(re.search(r"\[(\d+) earlier lines not shown\]", text).group(1))  # type: ignore[union-attr]
    assert text.count("heap &lt;") == 40 - dropped
    assert server.validate_blocks(message.blocks) == []


def test_a_silence_notice_links_the_silence_in_alertmanager() -> None:
    preview = samples.previews()["Silenced in Alertmanager (in the thread)"]
    message = blocks.render(preview, in_thread=True)
    assert message.blocks[0]["text"]["text"].endswith("OOMKilled · silenced")
    context = json.dumps(message.blocks)
    assert f"{samples.EXTERNAL_URL}/#/silences/{preview.silence_id}" in context
    expired = blocks.render(samples.previews()["Silence expired early (in the thread)"], in_thread=True)
    assert expired.blocks[0]["text"]["text"].endswith("OOMKilled · silence expired")
    not_made = blocks.render(dataclasses.replace(preview, silence_id=None, summary="no silence: down"))
    assert not_made.blocks[0]["text"]["text"].endswith("OOMKilled · not silenced")
