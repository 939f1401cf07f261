"""Slack's Block Kit limits, and keeping a message within them. Pure: no I/O.

Slack rejects a message that breaks its limits (`invalid_blocks`), and a rejected message is a lost message,
so every limit is enforced here, by truncating with an ellipsis, never by hoping the text is short.
`responder.notifiers.blocks` renders notices and re-exports these names.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

__all__ = [
    "ELLIPSIS",
    "MAX_BLOCKS",
    "MAX_BLOCK_ID_CHARS",
    "MAX_BUTTON_TEXT_CHARS",
    "MAX_CONTEXT_ELEMENTS",
    "MAX_FALLBACK_CHARS",
    "MAX_FIELDS",
    "MAX_FIELD_CHARS",
    "MAX_HEADER_CHARS",
    "MAX_SECTION_CHARS",
    "MAX_URL_CHARS",
    "Block",
    "enforce_limits",
    "escape",
    "truncate",
]

# Slack's documented Block Kit limits (api.slack.com/reference/block-kit/blocks).
MAX_BLOCKS = 50
MAX_HEADER_CHARS = 150
MAX_SECTION_CHARS = 3000
MAX_FIELDS = 10
MAX_FIELD_CHARS = 2000
MAX_CONTEXT_ELEMENTS = 10
MAX_ACTION_ELEMENTS = 25
MAX_BUTTON_TEXT_CHARS = 75
MAX_URL_CHARS = 3000
MAX_BLOCK_ID_CHARS = 255
MAX_FALLBACK_CHARS = 3000
"""The top-level `text` (notification and screen-reader fallback); Slack truncates past 40,000, we keep it short."""

ELLIPSIS = "…"

Block = dict[str, Any]


def escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as control characters; alert text is untrusted."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_PARTIAL_ENTITY = re.compile(r"&[a-z]{0,3}$")


def truncate(text: str, limit: int) -> str:
    """Cut `text` to at most `limit` characters, ending with an ellipsis when something was cut."""
    if len(text) <= limit:
        return text
    cut = text[: max(limit - len(ELLIPSIS), 0)]
    # Never leave half an escape sequence (`&am`) that Slack would show literally.
    cut = _PARTIAL_ENTITY.sub("", cut)
    return cut + ELLIPSIS


def _limit_text(obj: Any, limit: int) -> None:
    if isinstance(obj, dict) and isinstance(obj.get("text"), str):
        obj["text"] = truncate(obj["text"], limit) if obj["text"] else ELLIPSIS


def enforce_limits(blocks: Sequence[Block]) -> list[Block]:
    """A copy of `blocks` that Slack accepts: lengths truncated with an ellipsis, counts cut, ids unique."""
    out: list[Block] = []
    seen_ids: set[str] = set()
    for original in blocks:
        block = _deep_copy(original)
        kind = block.get("type")
        if kind == "header":
            _limit_text(block.get("text"), MAX_HEADER_CHARS)
        elif kind == "section":
            _limit_text(block.get("text"), MAX_SECTION_CHARS)
            if "fields" in block:
                block["fields"] = block["fields"][:MAX_FIELDS]
                for field in block["fields"]:
                    _limit_text(field, MAX_FIELD_CHARS)
        elif kind == "context":
            block["elements"] = block["elements"][:MAX_CONTEXT_ELEMENTS]
            for element in block["elements"]:
                _limit_text(element, MAX_SECTION_CHARS)
        elif kind == "actions":
            block["elements"] = [
                element
                for element in block["elements"][:MAX_ACTION_ELEMENTS]
                if len(element.get("url", "")) <= MAX_URL_CHARS
            ]
            for element in block["elements"]:
                _limit_text(element.get("text"), MAX_BUTTON_TEXT_CHARS)
            if not block["elements"]:
                continue
        block_id = block.get("block_id")
        if block_id is not None:
            block_id = str(block_id)[:MAX_BLOCK_ID_CHARS]
            if block_id in seen_ids:
                del block["block_id"]
            else:
                block["block_id"] = block_id
                seen_ids.add(block_id)
        out.append(block)
    if len(out) > MAX_BLOCKS:
        hidden = len(out) - (MAX_BLOCKS - 1)
        out = out[: MAX_BLOCKS - 1]
        out.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"…{hidden} more blocks not shown."}]}
        )
    return out


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _deep_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_deep_copy(item) for item in value]
    return value
