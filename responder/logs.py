"""Log output: one JSON object per line for machines, or a compact line for humans at a terminal.

Only formatting and handler set-up live here; what to log is decided where things happen. Context such as
the occurrence id, target and decision is passed as `extra={...}` and lands as keys of the JSON object.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from typing import Any, TextIO

__all__ = ["JsonFormatter", "TextFormatter", "configure"]

# Attributes every LogRecord has; anything else on a record came from `extra=` and is worth printing.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {key: value for key, value in record.__dict__.items() if key not in _STANDARD}


def _plain(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _extras(record).items():
            document.setdefault(key, _plain(value))
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        line = f"{stamp} {record.levelname:<7} {record.getMessage()}"
        extras = _extras(record)
        if extras:
            line += "  " + " ".join(f"{key}={_plain(value)}" for key, value in extras.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
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
    # aiohttp logs every request at INFO; the webhook counts them in metrics instead.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
