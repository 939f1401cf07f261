"""Log output: one JSON object per line for machines, or a compact line for humans at a terminal.

Only formatting and handler set-up live here; what to log is decided where things happen. Context such as
the occurrence id, target and decision is passed as `extra={...}` and lands as keys of the JSON object.

Much of what is logged comes from senders (Alertmanager's `groupKey`, alert labels, API error bodies), so
every line is made safe here, whatever the caller passed: no control character reaches the output unescaped
(a newline in a label cannot forge a second line) and every field is capped (a 1 MB `groupKey` cannot make
a 1 MB line). The formatters are on the webhook's hot path: the time is formatted once per second, the
record's own attributes are skipped without being looked at, and JSON is encoded in one C call.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import json
import logging
import re
import sys
from collections.abc import Callable, Hashable, Iterable, Mapping
from json import encoder as json_encoder
from typing import Any, TextIO

__all__ = [
    "MAX_FIELD_CHARS",
    "MAX_ITEMS",
    "MAX_MESSAGE_CHARS",
    "Batch",
    "GroupedBatch",
    "JsonFormatter",
    "TalliedBatch",
    "TextFormatter",
    "configure",
    "escape",
]

MAX_FIELD_CHARS = 1024
"""Longest string kept in a context field (longer ones are cut and say how much was cut)."""
MAX_MESSAGE_CHARS = 4096
"""Longest message, and longest exception text, kept in a line."""
MAX_ITEMS = 100
"""Most entries of a list or dict kept in a context field."""

# Attributes every LogRecord has; anything else on a record came from `extra=` and is worth printing.
_PROTOTYPE = logging.LogRecord("", 0, "", 0, "", (), None).__dict__
_STANDARD = frozenset(_PROTOTYPE) | {"message", "asctime", "taskName"}
# makeRecord() adds the `extra` keys after the record's own attributes: the first ones need no look.
_OWN_ATTRIBUTES = len(_PROTOTYPE)

# ASCII only: the C encoder escapes every control character and every non-ASCII code point (U+2028, NEL,
# bidirectional overrides), so nothing in a value can break a line or a terminal. `default=str` covers
# enums, datetimes and the like.
_ENCODER = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), default=str)


def _one_shot_encoder() -> Callable[[Any], str]:
    """`_ENCODER.encode`, without building a new C encoder for every call (a third of a short line's cost).

    `JSONEncoder.encode` makes one per call from the same settings; this makes it once. Without the C
    accelerator (another Python implementation) it is `_ENCODER.encode` itself.
    """
    # Not in the typing stubs: the C accelerator's constructor, None where there is no accelerator.
    make: Callable[..., Callable[[Any, int], list[str]]] | None = getattr(
        json_encoder, "c_make_encoder", None
    )
    if make is None:
        return _ENCODER.encode
    # No circular-reference markers: `_bounded` has already walked every container it did not vouch for as
    # flat, and a cycle would have stopped it (the record is then reported by logging, not written).
    encode = make(None, str, json_encoder.encode_basestring_ascii, None, ":", ",", False, False, True)

    def encoded(document: Any) -> str:
        return "".join(encode(document, 0))

    return encoded


_encode = _one_shot_encoder()


_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...[{len(text) - limit} more chars]"


def _are_short(values: Iterable[Any]) -> bool:
    """Whether every value is a plain scalar (str, number, bool, None), no string over MAX_FIELD_CHARS.

    Asked of a container before copying it: most containers logged (a decision, the counts of a webhook)
    pass, and are written as they are instead of rebuilt value by value.
    """
    for value in values:
        kind = type(value)
        if kind is str:
            if len(value) > MAX_FIELD_CHARS:
                return False
        elif kind is not int and kind is not float and kind is not bool and value is not None:
            return False
    return True


def _is_short_record(mapping: dict[Any, Any]) -> bool:
    """Whether `mapping` has str keys and values that are short scalars or short lists of them (a decision).

    One loop in this frame: called for every entry of a batch of decisions, it must cost less than the copy
    it saves.
    """
    for key, value in mapping.items():
        if type(key) is not str or len(key) > MAX_FIELD_CHARS:
            return False
        kind = type(value)
        if kind is str:
            if len(value) > MAX_FIELD_CHARS:
                return False
        elif kind is int or kind is float or kind is bool or value is None:
            continue
        elif not ((kind is list or kind is tuple) and len(value) <= MAX_ITEMS and _are_short(value)):
            return False
    return True


def _bounded(value: Any) -> Any:
    """`value` with every string cut to MAX_FIELD_CHARS and every container to MAX_ITEMS entries."""
    kind = type(value)
    if kind is str:
        return _cut(value, MAX_FIELD_CHARS)
    if kind is int or kind is float or kind is bool or value is None:
        return value
    if kind is dict:
        if len(value) <= MAX_ITEMS and _is_short_record(value):
            return value
    elif (kind is list or kind is tuple) and len(value) <= MAX_ITEMS and _are_short(value):
        return value
    if isinstance(value, list | tuple | set | frozenset):
        items = [_bounded(v) for v in itertools.islice(value, MAX_ITEMS)]
        if len(value) > MAX_ITEMS:
            items.append(f"...[{len(value) - MAX_ITEMS} more]")
        return items
    if isinstance(value, dict):
        bounded = {
            _cut(str(k), MAX_FIELD_CHARS): _bounded(v) for k, v in itertools.islice(value.items(), MAX_ITEMS)
        }
        if len(value) > MAX_ITEMS:
            bounded["..."] = f"{len(value) - MAX_ITEMS} more"
        return bounded
    if isinstance(value, str):  # a StrEnum: its value, as the JSON encoder would write it
        return _cut(str.__str__(value), MAX_FIELD_CHARS)
    return _cut(str(value), MAX_FIELD_CHARS)


def _extras(record: logging.LogRecord) -> Any:
    return (
        (key, value)
        for key, value in itertools.islice(record.__dict__.items(), _OWN_ATTRIBUTES, None)
        if key not in _STANDARD
    )


def _escape_char(char: str) -> str:
    escaped = _ESCAPES.get(char)
    if escaped is not None:
        return escaped
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape(text: str) -> str:
    """`text` with every non-printable character (controls, line and paragraph separators) spelled out."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape_char(c) for c in text)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then the context fields."""

    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._second_text = ""
        self._milli = -1
        self._milli_text = ""

    def _time(self, created: float) -> str:
        # Lines come in bursts: the text of one millisecond is made once.
        milli = int(created * 1000)
        if milli == self._milli:
            return self._milli_text
        second = milli // 1000
        if second != self._second:
            self._second = second
            self._second_text = datetime.datetime.fromtimestamp(second, datetime.UTC).strftime(
                "%Y-%m-%dT%H:%M:%S"
            )
        self._milli = milli
        self._milli_text = f"{self._second_text}.{milli - second * 1000:03d}+00:00"
        return self._milli_text

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": self._time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": _cut(record.getMessage(), MAX_MESSAGE_CHARS),
        }
        for key, value in _extras(record):
            if key not in document:
                document[key] = _bounded(value)
        if record.exc_info:
            document["exception"] = _cut(self.formatException(record.exc_info), MAX_MESSAGE_CHARS)
        return _encode(document)


# logfmt: a value with none of these needs no quotes (nothing in it can pass for another field).
_BARE = re.compile(r'[^\s"=\\]+')


def _text_value(value: Any) -> str:
    kind = type(value)
    if kind is int or kind is float or kind is bool:
        return str(value)
    bounded = _bounded(value)
    text = bounded if type(bounded) is str else _ENCODER.encode(bounded)
    if text.isprintable() and _BARE.fullmatch(text):
        return text
    return '"' + escape(text.replace("\\", "\\\\").replace('"', '\\"')) + '"'


class TextFormatter(logging.Formatter):
    """`HH:MM:SS LEVEL message  key=value ...` (logfmt values); tracebacks indented under the line."""

    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._second_text = ""

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:
            self._second = second
            self._second_text = datetime.datetime.fromtimestamp(second).strftime("%H:%M:%S")
        line = f"{self._second_text} {record.levelname:<7} {escape(_cut(record.getMessage(), MAX_MESSAGE_CHARS))}"
        fields = " ".join(
            f"{escape(_cut(key, MAX_FIELD_CHARS))}={_text_value(value)}" for key, value in _extras(record)
        )
        if fields:
            line += "  " + fields
        if record.exc_info:
            # Indented, so that no line of a traceback (whose message may quote input) reads as a record.
            trace = _cut(self.formatException(record.exc_info), MAX_MESSAGE_CHARS)
            line += "".join("\n    " + escape(part) for part in trace.rstrip("\n").split("\n"))
        return line


class Batch:
    """Entries of one kind (a webhook accepted, a decision) logged as one INFO line per up to MAX_ITEMS of them.

    A line each was the largest single cost of a small webhook: a record, its formatting and a write, for a
    few fields. A batch costs one record for up to MAX_ITEMS entries, each still listed in full under `field`,
    with `count`. It is written once full, `delay_seconds` after its first entry, or on `flush()` (at
    shutdown); outside a running event loop at once. With `debug_message`, each entry is also logged on its
    own line at DEBUG, when it is added.
    """

    def __init__(
        self,
        logger: logging.Logger,
        message: str,
        *,
        field: str,
        debug_message: str | None = None,
        delay_seconds: float = 0.25,
    ) -> None:
        self._logger = logger
        self._message = message
        self._field = field
        self._debug_message = debug_message
        self._delay_seconds = delay_seconds
        self._entries: list[dict[str, Any]] = []
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None

    def add(self, entry: dict[str, Any]) -> None:
        logger = self._logger
        if self._debug_message is not None and logger.isEnabledFor(logging.DEBUG):
            logger.debug(self._debug_message, extra=entry)
        if not logger.isEnabledFor(logging.INFO):
            return
        self._entries.append(entry)
        self._added()

    def _added(self) -> None:
        self._size += 1
        if self._size >= MAX_ITEMS:
            self.flush()
        elif self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self._timer = loop.call_later(self._delay_seconds, self.flush)

    def _take(self) -> list[dict[str, Any]]:
        entries, self._entries = self._entries, []
        return entries

    def flush(self) -> None:
        """Write what is pending now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._size:
            size, self._size = self._size, 0
            self._logger.info(self._message, extra={"count": size, self._field: self._take()})


class TalliedBatch(Batch):
    """A batch of entries that are often identical (the counts of one group's webhooks in a storm): each
    distinct entry is listed once, with `count`, how many of the batch's entries it stands for.

    `count` on the line counts entries, not distinct ones; the line is written at MAX_ITEMS entries, as a
    Batch's. With `debug_message`, each entry is also logged on its own line at DEBUG.
    """

    def __init__(self, logger: logging.Logger, message: str, **options: Any) -> None:
        """As `Batch`'s (`field`, `debug_message`, `delay_seconds`)."""
        super().__init__(logger, message, **options)
        self._distinct: dict[Hashable, dict[str, Any]] = {}

    def add_tallied(self, key: Hashable, entry: Mapping[str, Any]) -> None:
        """Add `entry`; `key` is the same for entries that are the same (it is not written)."""
        logger = self._logger
        if self._debug_message is not None and logger.isEnabledFor(logging.DEBUG):
            logger.debug(self._debug_message, extra=dict(entry))
        if not logger.isEnabledFor(logging.INFO):
            return
        same = self._distinct.get(key)
        if same is None:
            self._distinct[key] = {**entry, "count": 1}
        else:
            same["count"] += 1
        self._added()

    def _take(self) -> list[dict[str, Any]]:
        distinct, self._distinct = list(self._distinct.values()), {}
        return distinct


class GroupedBatch(Batch):
    """A batch of entries that mostly repeat one another, listed once per group with what tells them apart.

    A label-only decision is an occurrence id and a target under fields most decisions share (alert name,
    playbook, action, decision): the line lists each group's shared fields once, with `members` mapping each
    entry's own key to its own value (occurrence id → target). `count` counts entries, not groups; the line
    is written at MAX_ITEMS entries, as a Batch's. No line of its own at DEBUG: the caller writes it.
    """

    def __init__(
        self,
        logger: logging.Logger,
        message: str,
        *,
        field: str,
        members: str,
        delay_seconds: float = 0.25,
    ) -> None:
        super().__init__(logger, message, field=field, delay_seconds=delay_seconds)
        self._members = members
        self._groups: dict[Hashable, dict[str, Any]] = {}

    def add_member(self, group: Hashable, *, shared: Mapping[str, Any], key: str, value: Any) -> None:
        """Add the entry `key` → `value` to `group`, whose shared fields are `shared` (used when it is new)."""
        if not self._logger.isEnabledFor(logging.INFO):
            return
        entries = self._groups.get(group)
        if entries is None:
            entries = self._groups[group] = {**shared, self._members: {}}
        entries[self._members][key] = value
        self._added()

    def _take(self) -> list[dict[str, Any]]:
        groups, self._groups = list(self._groups.values()), {}
        return groups


def configure(*, format: str = "json", level: str = "INFO", stream: TextIO | None = None) -> None:
    """Replace the root logger's handlers with one writing `format` ("json" or "text") to `stream`."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Neither format prints the caller's file and line, thread or process: do not pay for finding them on
    # every record (the logging HOWTO's "Optimization" section; the caller lookup walks the stack).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    # aiohttp logs every request at INFO; the webhook counts them in metrics instead.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
