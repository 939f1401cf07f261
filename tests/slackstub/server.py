"""A local stand-in for Slack's Web API (`chat.postMessage`) and incoming webhooks (test support).

It checks what Slack checks and answers the way Slack answers, so a message it accepts is one Slack would
accept:

* Web API: `Authorization: Bearer xoxb-…` (`not_authed` without it, `invalid_auth` for an unknown token),
  the channel (`channel_not_found`), `text` or `blocks` present (`no_text`), the Block Kit structure and
  limits (`invalid_blocks`, with Slack-like `errors`), `thread_ts` naming a message of that channel
  (`thread_not_found`). Errors come with HTTP 200 and `{"ok": false, "error": ...}`, as Slack does.
  Success: `{"ok": true, "channel": ..., "ts": "1700000000.000100", "message": {...}}`.
* Incoming webhooks (`POST /services/T…/B…/secret`): unknown path → 404 `no_service`, bad JSON → 400
  `invalid_payload`, no text/blocks → 400 `no_text`, bad blocks → 400 `invalid_blocks`; success 200 `ok`.

Failures are scriptable, in order, for the next requests: `fail(status=429, retry_after=1)`, `fail(status=500)`,
`hang()` (the request waits until `release()` or the stub stops, so clients time out), `hold()` (waits
until `release()`, then is answered normally).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
from typing import Any

from aiohttp import web

__all__ = ["Posted", "SlackStub", "Trouble", "validate_blocks"]

HEADER_MAX = 150
SECTION_TEXT_MAX = 3000
FIELD_MAX = 2000
FIELDS_MAX = 10
BLOCKS_MAX = 50
CONTEXT_ELEMENTS_MAX = 10
ACTIONS_ELEMENTS_MAX = 25
BUTTON_TEXT_MAX = 75
URL_MAX = 3000
BLOCK_ID_MAX = 255
TEXT_TYPES = {"plain_text", "mrkdwn"}


@dataclasses.dataclass
class Posted:
    """One message Slack accepted."""

    via: str
    """`api` (chat.postMessage) or `webhook`."""
    channel: str
    ts: str
    text: str | None
    blocks: list[dict[str, Any]]
    thread_ts: str | None = None
    reply_broadcast: bool = False
    token: str | None = None


@dataclasses.dataclass
class Trouble:
    """A scripted failure for one upcoming request."""

    status: int = 500
    retry_after: int | None = None
    hang: bool = False
    then_answer: bool = False
    """After the hang, answer normally instead of 500 (a slow but successful request)."""


def _text_object_errors(obj: Any, where: str, *, limit: int, plain_only: bool = False) -> list[str]:
    if not isinstance(obj, dict) or obj.get("type") not in TEXT_TYPES or not isinstance(obj.get("text"), str):
        return [f"invalid text object [json-pointer:{where}]"]
    if plain_only and obj["type"] != "plain_text":
        return [f"must be plain_text [json-pointer:{where}/type]"]
    text = obj["text"]
    if not text:
        return [f"must be more than 0 characters [json-pointer:{where}/text]"]
    if len(text) > limit:
        return [f"must be less than {limit + 1} characters [json-pointer:{where}/text]"]
    return []


def validate_blocks(blocks: Any) -> list[str]:
    """Slack's Block Kit checks for the block types the responder uses; an empty list means valid."""
    if not isinstance(blocks, list):
        return ["blocks must be an array [json-pointer:/blocks]"]
    errors: list[str] = []
    if len(blocks) > BLOCKS_MAX:
        errors.append(f"no more than {BLOCKS_MAX} items allowed [json-pointer:/blocks]")
    seen_ids: set[str] = set()
    for i, block in enumerate(blocks):
        where = f"/blocks/{i}"
        if not isinstance(block, dict):
            errors.append(f"block must be an object [json-pointer:{where}]")
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            if not isinstance(block_id, str) or len(block_id) > BLOCK_ID_MAX:
                errors.append(f"invalid block_id [json-pointer:{where}/block_id]")
            elif block_id in seen_ids:
                errors.append(f"duplicate block_id [json-pointer:{where}/block_id]")
            seen_ids.add(str(block_id))
        kind = block.get("type")
        if kind == "header":
            errors += _text_object_errors(
                block.get("text"), f"{where}/text", limit=HEADER_MAX, plain_only=True
            )
        elif kind == "section":
            if "text" not in block and "fields" not in block:
                errors.append(f"must provide text or fields [json-pointer:{where}]")
            if "text" in block:
                errors += _text_object_errors(block["text"], f"{where}/text", limit=SECTION_TEXT_MAX)
            if "fields" in block:
                fields = block["fields"]
                if not isinstance(fields, list) or not fields or len(fields) > FIELDS_MAX:
                    errors.append(f"must have 1 to {FIELDS_MAX} fields [json-pointer:{where}/fields]")
                else:
                    for j, field in enumerate(fields):
                        errors += _text_object_errors(field, f"{where}/fields/{j}", limit=FIELD_MAX)
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not elements or len(elements) > CONTEXT_ELEMENTS_MAX:
                errors.append(
                    f"must have 1 to {CONTEXT_ELEMENTS_MAX} elements [json-pointer:{where}/elements]"
                )
            else:
                for j, element in enumerate(elements):
                    errors += _text_object_errors(element, f"{where}/elements/{j}", limit=SECTION_TEXT_MAX)
        elif kind == "actions":
            elements = block.get("elements")
            if not isinstance(elements, list) or not elements or len(elements) > ACTIONS_ELEMENTS_MAX:
                errors.append(
                    f"must have 1 to {ACTIONS_ELEMENTS_MAX} elements [json-pointer:{where}/elements]"
                )
            else:
                for j, element in enumerate(elements):
                    at = f"{where}/elements/{j}"
                    if not isinstance(element, dict) or element.get("type") != "button":
                        errors.append(f"unsupported element type [json-pointer:{at}]")
                        continue
                    errors += _text_object_errors(
                        element.get("text"), f"{at}/text", limit=BUTTON_TEXT_MAX, plain_only=True
                    )
                    url = element.get("url")
                    if url is not None and (not isinstance(url, str) or len(url) > URL_MAX):
                        errors.append(f"must be less than {URL_MAX + 1} characters [json-pointer:{at}/url]")
        elif kind == "divider":
            pass
        else:
            errors.append(f"unsupported type: {kind!r} [json-pointer:{where}/type]")
    return errors


class SlackStub:
    """The stand-in's state and aiohttp application. Serve `app` (e.g. with pytest-aiohttp's `aiohttp_server`)."""

    def __init__(
        self,
        *,
        tokens: tuple[str, ...] = ("xoxb-test-token",),
        channels: tuple[str, ...] = ("C0INCIDENTS", "#incidents"),
        webhook_paths: tuple[str, ...] = ("/services/T000/B000/webhooksecret",),
    ) -> None:
        self.tokens = set(tokens)
        self.channels = set(channels)
        self.webhook_paths = set(webhook_paths)
        self.posted: list[Posted] = []
        self.requests = 0
        """Every request received, including rejected and failed ones."""
        self.rejections: list[dict[str, Any]] = []
        """Answers with ok=false (or a 4xx), with the error Slack would give."""
        self._troubles: list[Trouble] = []
        self._counter = itertools.count(100)
        self._release = asyncio.Event()
        self.received = asyncio.Event()
        """Set on every request; tests clear it and wait to know a request arrived."""
        self.app = web.Application()
        self.app.router.add_post("/api/chat.postMessage", self._post_message)
        self.app.router.add_post("/services/{path:.*}", self._webhook)
        self.app.on_shutdown.append(self._on_shutdown)

    # Scripting.

    def fail(self, *, status: int = 500, retry_after: int | None = None, times: int = 1) -> None:
        """The next `times` requests answer `status` (429 carries `Retry-After: retry_after`)."""
        self._troubles.extend(Trouble(status=status, retry_after=retry_after) for _ in range(times))

    def hang(self, *, times: int = 1) -> None:
        """The next `times` requests wait until `release()` (or shutdown) before answering 500."""
        self._release.clear()
        self._troubles.extend(Trouble(hang=True) for _ in range(times))

    def hold(self, *, times: int = 1) -> None:
        """The next `times` requests wait until `release()`, then are answered normally (slow Slack)."""
        self._release.clear()
        self._troubles.extend(Trouble(hang=True, then_answer=True) for _ in range(times))

    def release(self) -> None:
        self._release.set()

    def in_thread(self, ts: str) -> list[Posted]:
        return [posted for posted in self.posted if posted.thread_ts == ts]

    def top_level(self) -> list[Posted]:
        return [posted for posted in self.posted if posted.thread_ts is None]

    # Handlers.

    async def _on_shutdown(self, app: web.Application) -> None:
        self._release.set()

    async def _trouble(self) -> web.Response | None:
        self.requests += 1
        self.received.set()
        if not self._troubles:
            return None
        trouble = self._troubles.pop(0)
        if trouble.hang:
            await self._release.wait()
            if trouble.then_answer:
                return None
            return web.json_response({"ok": False, "error": "internal_error"}, status=500)
        headers = {"Retry-After": str(trouble.retry_after)} if trouble.retry_after is not None else None
        if trouble.status == 429:
            return web.json_response({"ok": False, "error": "ratelimited"}, status=429, headers=headers)
        return web.Response(status=trouble.status, text="upstream trouble", headers=headers)

    def _next_ts(self) -> str:
        return f"1700000000.{next(self._counter):06d}"

    def _reject(self, error: str, **extra: Any) -> web.Response:
        body = {"ok": False, "error": error, **extra}
        self.rejections.append(body)
        return web.json_response(body)

    async def _post_message(self, request: web.Request) -> web.Response:
        trouble = await self._trouble()
        if trouble is not None:
            return trouble
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return self._reject("not_authed")
        token = auth.removeprefix("Bearer ")
        if not token.startswith("xoxb-") or token not in self.tokens:
            return self._reject("invalid_auth")
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                return self._reject("invalid_json")
        else:
            form = await request.post()
            body = {key: str(value) for key, value in form.items()}
            if isinstance(body.get("blocks"), str):
                body["blocks"] = json.loads(body["blocks"])
        if not isinstance(body, dict):
            return self._reject("invalid_arguments")
        channel = body.get("channel")
        if not channel or channel not in self.channels:
            return self._reject("channel_not_found")
        blocks = body.get("blocks")
        text = body.get("text")
        if not text and not blocks:
            return self._reject("no_text")
        if blocks is not None:
            errors = validate_blocks(blocks)
            if errors:
                return self._reject("invalid_blocks", errors=errors)
        thread_ts = body.get("thread_ts")
        if thread_ts is not None and not any(
            posted.ts == thread_ts and posted.channel == channel and posted.via == "api"
            for posted in self.posted
        ):
            return self._reject("thread_not_found")
        ts = self._next_ts()
        self.posted.append(
            Posted(
                via="api",
                channel=channel,
                ts=ts,
                text=text,
                blocks=blocks or [],
                thread_ts=thread_ts,
                reply_broadcast=bool(body.get("reply_broadcast")),
                token=token,
            )
        )
        message = {"type": "message", "text": text, "ts": ts, "blocks": blocks or []}
        if thread_ts is not None:
            message["thread_ts"] = thread_ts
        return web.json_response({"ok": True, "channel": channel, "ts": ts, "message": message})

    async def _webhook(self, request: web.Request) -> web.Response:
        trouble = await self._trouble()
        if trouble is not None:
            return trouble
        if request.path not in self.webhook_paths:
            self.rejections.append({"error": "no_service"})
            return web.Response(status=404, text="no_service")
        try:
            body = json.loads(await request.text())
        except ValueError:
            self.rejections.append({"error": "invalid_payload"})
            return web.Response(status=400, text="invalid_payload")
        if not isinstance(body, dict) or (not body.get("text") and not body.get("blocks")):
            self.rejections.append({"error": "no_text"})
            return web.Response(status=400, text="no_text")
        if "blocks" in body:
            errors = validate_blocks(body["blocks"])
            if errors:
                self.rejections.append({"error": "invalid_blocks", "errors": errors})
                return web.Response(status=400, text="invalid_blocks")
        self.posted.append(
            Posted(
                via="webhook",
                channel=request.path,
                ts=self._next_ts(),
                text=body.get("text"),
                blocks=body.get("blocks") or [],
            )
        )
        return web.Response(text="ok")
