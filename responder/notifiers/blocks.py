"""Rendering a notice as a Slack Block Kit message. Pure: no I/O, no clock, no network.

One message per notice (or one digest for many): a header with severity and alert name, where it happened,
what was done or would be done, why, links (alert source, runbook, an Alertmanager silence) and the outcome.
Every message is cut to Slack's limits before it leaves (`responder.notifiers.block_limits`).
It must not send anything nor read settings or secrets.
"""

from __future__ import annotations

import dataclasses
import urllib.parse
from collections.abc import Mapping, Sequence

from responder.logic import analysing, excerpting
from responder.models import actions, analyses, decisions, notices, quantities
from responder.notifiers.block_limits import (
    ELLIPSIS,
    MAX_BLOCKS,
    MAX_BUTTON_TEXT_CHARS,
    MAX_CONTEXT_ELEMENTS,
    MAX_FALLBACK_CHARS,
    MAX_FIELD_CHARS,
    MAX_FIELDS,
    MAX_HEADER_CHARS,
    MAX_SECTION_CHARS,
    MAX_URL_CHARS,
    Block,
    enforce_limits,
    escape,
    truncate,
)

__all__ = [
    "ELLIPSIS",
    "MAX_BLOCKS",
    "MAX_BUTTON_TEXT_CHARS",
    "MAX_CONTEXT_ELEMENTS",
    "MAX_FIELDS",
    "MAX_FIELD_CHARS",
    "MAX_HEADER_CHARS",
    "MAX_SECTION_CHARS",
    "MAX_URL_CHARS",
    "Message",
    "digest_line",
    "enforce_limits",
    "escape",
    "render",
    "render_digest",
    "silence_url",
    "title",
    "truncate",
]


@dataclasses.dataclass(frozen=True, slots=True)
class Message:
    """What is posted: `text` is the notification fallback, `blocks` the Block Kit layout."""

    text: str
    blocks: list[Block]


_SEVERITY_EMOJI = {
    "critical": ":red_circle:",
    "error": ":red_circle:",
    "page": ":red_circle:",
    "warning": ":large_orange_circle:",
    "info": ":large_blue_circle:",
}

_KIND_EMOJI = {
    notices.NoticeKind.ACTION: ":wrench:",
    notices.NoticeKind.REFUSAL: ":no_entry:",
    notices.NoticeKind.VERIFICATION: ":mag:",
    notices.NoticeKind.REPEAT: ":repeat:",
    notices.NoticeKind.RESOLVED: ":white_check_mark:",
    notices.NoticeKind.ESCALATION: ":rotating_light:",
    notices.NoticeKind.BREAKER: ":octagonal_sign:",
    notices.NoticeKind.FOLLOW_UP: ":calendar:",
    notices.NoticeKind.SILENCE: ":mute:",
}

_GUARDRAIL_WORDS = {
    decisions.Guardrail.NAMESPACE: "the namespace is not managed",
    decisions.Guardrail.OPT_OUT: "the workload opted out (oom-responder.io/enabled)",
    decisions.Guardrail.CEILING: "the ceiling (max memory / max replicas) would be exceeded",
    decisions.Guardrail.STEP: "the step would be larger than allowed",
    decisions.Guardrail.COOLDOWN: "the same action ran recently (cooldown)",
    decisions.Guardrail.CAP: "too many actions on this workload within the window (cap)",
    decisions.Guardrail.BUDGET: "the cluster-wide mutation budget is spent",
    decisions.Guardrail.BLAST_RADIUS: "too many workloads alerting at once (blast-radius breaker)",
    decisions.Guardrail.PAUSED: "the service is paused",
}


def silence_url(external_url: str, labels: Mapping[str, str]) -> str | None:
    """An Alertmanager UI link that opens a new silence prefilled with the alert's labels as `=` matchers.

    Same shape as the UI's own "Silence" button: `{externalURL}/#/silences/new?filter={a="b",...}`.
    """
    if not external_url or not labels or not _is_http(external_url):
        return None
    names = sorted(labels, key=lambda name: (name != "alertname", name))
    matchers = ",".join(f'{name}="{_quote_label_value(labels[name])}"' for name in names)
    query = urllib.parse.quote("{" + matchers + "}", safe="")
    return f"{external_url.rstrip('/')}/#/silences/new?filter={query}"


def _quote_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _is_http(url: str) -> bool:
    return url.startswith(("http://", "https://"))


def _severity(notice: notices.Notice) -> str | None:
    return notice.event.severity if notice.event is not None and notice.event.severity else None


def title(notice: notices.Notice) -> str:
    """The one-line headline: severity, alert name and what happened, e.g. `CRITICAL · OOMKilled · ...`."""
    parts: list[str] = []
    severity = _severity(notice)
    if severity:
        parts.append(severity.upper())
    if notice.event is not None:
        parts.append(notice.event.alertname)
    parts.append(_what_happened(notice))
    return " · ".join(parts)


def _what_happened(notice: notices.Notice) -> str:
    kind = notice.kind
    if kind is notices.NoticeKind.ACTION:
        if notice.action is None:
            return "DRY RUN: " if notice.dry_run else "acted"
        traits = actions.traits_of(notice.action)
        return f"DRY RUN: {traits.would_words}" if notice.dry_run else traits.done_words
    if kind is notices.NoticeKind.REFUSAL:
        if notice.guardrail is not None:
            return f"blocked by guardrail {notice.guardrail.value}"
        if notice.reason is not None:
            return f"not done: {notice.reason.value.replace('_', ' ')}"
        return "not done"
    if kind is notices.NoticeKind.VERIFICATION:
        if notice.outcome is decisions.Outcome.FAILED:
            return "verification FAILED"
        return "verified: rollout finished"
    if kind is notices.NoticeKind.REPEAT:
        return "firing again"
    if kind is notices.NoticeKind.RESOLVED:
        return "resolved"
    if kind is notices.NoticeKind.ESCALATION:
        return "needs a human"
    if kind is notices.NoticeKind.FOLLOW_UP:
        return "after the mitigation"
    if kind is notices.NoticeKind.SILENCE:
        if notice.silence_id is None:
            return "not silenced"
        # The quieter's lines: "silenced ..." when created; "silence <id> expired early: ..." / "... had already
        # ended" when the mitigation failed.
        if notice.summary.startswith("silenced "):
            return "silenced"
        return "silence NOT expired" if "could not be expired" in notice.summary else "silence expired"
    return "breaker"


def _header_emoji(notice: notices.Notice) -> str:
    if notice.kind is notices.NoticeKind.ACTION:
        severity = (_severity(notice) or "").lower()
        return _SEVERITY_EMOJI.get(severity, ":large_blue_circle:")
    if notice.kind is notices.NoticeKind.VERIFICATION and notice.outcome is decisions.Outcome.FAILED:
        return ":x:"
    return _KIND_EMOJI[notice.kind]


def _fields(notice: notices.Notice, *, in_thread: bool) -> list[str]:
    fields: list[str] = []
    event = notice.event
    if in_thread:
        # The thread's first message already says where and which playbook: replies say what changed.
        event = None
        notice = dataclasses.replace(notice, target=None, playbook=None)
    namespace = notice.target.namespace if notice.target else (event.namespace if event else None)
    if namespace:
        fields.append(f"*Namespace*\n`{escape(namespace)}`")
    if notice.target is not None:
        fields.append(f"*Workload*\n{notice.target.kind.value} `{escape(notice.target.name)}`")
    if event is not None and event.pod:
        pod = escape(event.pod) + (f" / {escape(event.container)}" if event.container else "")
        fields.append(f"*Pod / container*\n`{pod}`")
    if notice.playbook:
        fields.append(f"*Playbook*\n`{escape(notice.playbook)}`")
    if notice.action is not None:
        fields.append(f"*Action*\n`{notice.action.value}`")
    if notice.from_value is not None or notice.to_value is not None:
        change = f"{escape(notice.from_value or '?')} → {escape(notice.to_value or '?')}"
        label = "Would change" if notice.dry_run else "Change"
        fields.append(f"*{label}*\n{change}")
    if notice.outcome is not None:
        fields.append(f"*Outcome*\n`{notice.outcome.value}`")
    return fields


def _why(notice: notices.Notice, *, in_thread: bool) -> str:
    lines: list[str] = []
    event = notice.event
    if event is not None and not in_thread:
        summary = event.annotations.get("summary")
        description = event.annotations.get("description")
        if summary:
            lines.append(f"*Alert:* {escape(summary)}")
        if description and description != summary:
            lines.append(f">{escape(description)}".replace("\n", "\n>"))
    if notice.playbook and not in_thread:
        step = f" step `{notice.action.value}`" if notice.action else ""
        lines.append(f"*Playbook:* `{escape(notice.playbook)}`{step}")
    if notice.guardrail is not None:
        words = _GUARDRAIL_WORDS.get(notice.guardrail, notice.guardrail.value)
        lines.append(f"*Blocked by guardrail* `{notice.guardrail.value}`: {words}")
    elif notice.reason is not None and notice.reason not in (
        decisions.Reason.ALLOWED,
        decisions.Reason.GUARDRAIL,
    ):
        lines.append(f"*Reason:* `{notice.reason.value}`")
    if notice.detail:
        lines.append(escape(notice.detail))
    return "\n".join(lines)


def _links(notice: notices.Notice) -> list[Block]:
    event = notice.event
    if event is None:
        return []
    candidates: list[tuple[str, str | None, str]] = [
        ("Alert source", event.generator_url, "source"),
        ("Runbook", event.annotations.get("runbook_url"), "runbook"),
        ("Silence in Alertmanager", silence_url(event.external_url, event.labels), "silence"),
    ]
    return [
        {
            "type": "button",
            "text": {"type": "plain_text", "text": text, "emoji": True},
            "url": url,
            "action_id": action_id,
        }
        for text, url, action_id in candidates
        if url and _is_http(url) and len(url) <= MAX_URL_CHARS
    ]


def _silence_link(notice: notices.Notice) -> str | None:
    """The silence the notice is about, linked to Alertmanager's UI when its URL is known."""
    if notice.silence_id is None:
        return None
    external = notice.event.external_url if notice.event is not None else ""
    silence_id = escape(notice.silence_id)
    if external and _is_http(external):
        url = f"{external.rstrip('/')}/#/silences/{urllib.parse.quote(notice.silence_id, safe='')}"
        return f":mute: Alertmanager silence <{url}|{silence_id}>"
    return f":mute: Alertmanager silence `{silence_id}`"


def _outcome_line(notice: notices.Notice) -> str | None:
    """The verification outcome, as far as it is known when this notice is sent."""
    if notice.kind is notices.NoticeKind.VERIFICATION:
        if notice.outcome is decisions.Outcome.FAILED:
            return ":x: *Verification failed*: the change did not roll out. Look at the workload now."
        return ":white_check_mark: *Verified*: the rollout finished."
    following = notice.action is not None and actions.traits_of(notice.action).follows_rollout
    if notice.kind is notices.NoticeKind.ACTION and not notice.dry_run and following:
        return (
            ":hourglass_flowing_sand: Verification: following the rollout; the result follows in this thread."
        )
    return None


def _analysis(notice: notices.Notice) -> str | None:
    """The workload's memory history (RB-010 Step 3): pattern, growth, time to OOM, what a raise buys, the
    right-sized limit, a sparkline of the window from zero to the limit, and the reason."""
    found = notice.analysis
    if found is None:
        return None
    new_limit = None
    if notice.action is not None and notice.action.value == "raise_memory" and notice.to_value:
        try:
            new_limit = quantities.parse_bytes(notice.to_value)
        except ValueError:
            new_limit = None
    summary = analysing.summarize(found, new_limit_bytes=new_limit).removeprefix("memory history: ")
    lines = [f":chart_with_upwards_trend: *Memory history*: {escape(summary)}"]
    spark = analysing.render_sparkline(found.sparkline, limit_bytes=found.limit_bytes)
    if spark:
        top = found.limit_bytes or found.peak_bytes
        scale = (
            f" 0 → {quantities.format_bytes(int(top))}{' (limit)' if found.limit_bytes else ''}"
            if top
            else ""
        )
        lines.append(f"`{spark}`{scale}, last {found.window_seconds / 3600:.0f} h")
    if found.pattern is not analyses.Pattern.INSUFFICIENT_DATA:
        lines.append(f"_{escape(truncate(found.reason, 400))}_")
    return "\n".join(lines)


def render(notice: notices.Notice, *, in_thread: bool = False) -> Message:
    """The Block Kit message for one notice, within Slack's limits.

    `in_thread`: a reply in the incident's thread, which leaves out what its first message already shows
    (where, the alert's text, the playbook, the links).
    """
    headline = title(notice)
    blocks: list[Block] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": f"{_header_emoji(notice)} {headline}", "emoji": True},
        }
    ]
    if notice.dry_run:
        blocks.append(
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": ":test_tube: *DRY RUN* — nothing was changed; `mode: enforce` would make this change.",
                    }
                ],
            }
        )
    if notice.summary:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": escape(notice.summary)}})
    fields = _fields(notice, in_thread=in_thread)
    if fields:
        blocks.append({"type": "section", "fields": [{"type": "mrkdwn", "text": field} for field in fields]})
    why = _why(notice, in_thread=in_thread)
    if why:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": why}})
    if notice.log_lines:
        head = "*Previous log*, the last matching lines (redacted):\n"
        block = excerpting.fence(
            [escape(line) for line in notice.log_lines], max_chars=MAX_SECTION_CHARS - len(head)
        )
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": head + block}})
    silence = _silence_link(notice)
    if silence:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": silence}]})
    outcome = _outcome_line(notice)
    if outcome:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": outcome}})
    history = None if in_thread and notice.kind is not notices.NoticeKind.ACTION else _analysis(notice)
    if history:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": history}})
    buttons = [] if in_thread else _links(notice)
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    blocks.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"oom-responder · {notice.kind.value} · incident `{escape(notice.incident)}` · "
                    f"<!date^{int(notice.at.timestamp())}^{{date_short_pretty}} {{time_secs}}|"
                    f"{notice.at.isoformat()}>",
                }
            ],
        }
    )
    fallback = f"{headline}: {notice.summary}" if notice.summary else headline
    return Message(text=truncate(fallback, MAX_FALLBACK_CHARS), blocks=enforce_limits(blocks))


def digest_line(notice: notices.Notice) -> str:
    """One line of a digest: emoji, headline, where, and the change."""
    where = ""
    if notice.target is not None:
        where = f" `{escape(notice.target.namespace)}/{escape(notice.target.name)}`"
    elif notice.event is not None and notice.event.namespace:
        where = f" `{escape(notice.event.namespace)}`"
    change = ""
    if notice.from_value is not None or notice.to_value is not None:
        change = f" {escape(notice.from_value or '?')} → {escape(notice.to_value or '?')}"
    return f"{_header_emoji(notice)} {escape(title(notice))}{where}{change}"


def render_digest(
    batch: Sequence[notices.Notice], *, window_seconds: float | None = None, max_lines: int = 100
) -> Message:
    """One message standing for many notices that arrived within seconds (a storm), within Slack's limits.

    Lines are packed into sections of at most 3000 characters; past `max_lines` (a digest is read at a
    glance) or 50 blocks the rest is counted, not shown.
    """
    count = len(batch)
    within = f" within {window_seconds:.0f}s" if window_seconds is not None else ""
    head = f":cyclone: oom-responder digest: {count} notices{within}"
    kinds: dict[str, int] = {}
    for notice in batch:
        kinds[notice.kind.value] = kinds.get(notice.kind.value, 0) + 1
    tally = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
    dry = sum(1 for notice in batch if notice.dry_run)
    blocks: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": head, "emoji": True}},
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"Many notices at once: {tally}"
                    + (f" ({dry} dry run)" if dry else "")
                    + ". Details are in the service's logs and Kubernetes Events.",
                }
            ],
        },
    ]
    # Leave room for the header, the context and the "more" line at the end.
    room = MAX_BLOCKS - len(blocks) - 1
    chunk: list[str] = []
    size = 0
    shown = 0
    for notice in batch[:max_lines]:
        line = truncate(digest_line(notice), 500)
        if chunk and size + len(line) + 1 > MAX_SECTION_CHARS:
            if room == 0:
                break
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(chunk)}})
            room -= 1
            chunk, size = [], 0
        if room == 0:
            break
        chunk.append(line)
        size += len(line) + 1
        shown += 1
    if chunk and room > 0:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(chunk)}})
    else:
        shown -= len(chunk)
    if shown < count:
        blocks.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"…and {count - shown} more not shown."}],
            }
        )
    return Message(text=truncate(head, MAX_FALLBACK_CHARS), blocks=enforce_limits(blocks))
