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

import datetime
import itertools
import json
import logging
import re
import sys
from typing import Any, TextIO

__all__ = [
    "MAX_FIELD_CHARS",
    "MAX_ITEMS",
    "MAX_MESSAGE_CHARS",
    "JsonFormatter",
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

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...[{len(text) - limit} more chars]"


def _bounded(value: Any) -> Any:
    """`value` with every string cut to MAX_FIELD_CHARS and every container to MAX_ITEMS entries."""
    kind = type(value)
    if kind is str:
        return _cut(value, MAX_FIELD_CHARS)
    if kind is int or kind is float or kind is bool or value is None:
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

    def _time(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._second = second
            self._second_text = datetime.datetime.fromtimestamp(second, datetime.UTC).strftime(
                "%Y-%m-%dT%H:%M:%S"
            )
        return f"{self._second_text}.{int((created - second) * 1000):03d}+00:00"

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
        return _ENCODER.encode(document)


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
