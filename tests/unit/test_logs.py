"""Log formatting.

Covers: JSON output is one object per line carrying the `extra` context (occurrence id, target, decision);
the text format is one readable line with the same context; exceptions are included; the time is UTC with
milliseconds, per record; log injection: control characters and line separators in any value, key or
message never start a new line in either format (JSON escapes them, text spells them out and quotes values
that could pass for fields); every field, list, dict and message is capped and says how much was cut; a batch
of entries is one line, written when full, soon after its first entry, or at once outside an event loop.
"""

from __future__ import annotations

import asyncio
import datetime
import enum
import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest

from responder import logs


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    srcfile = logging._srcfile
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging._srcfile = srcfile


def test_json_lines_carry_the_context(restore_root_logger: None) -> None:
    stream = io.StringIO()
    logs.configure(format="json", level="INFO", stream=stream)
    logging.getLogger("responder.test").info(
        "would act", extra={"occurrence_id": "f1@t", "target": "shop/Deployment/api", "decision": "would_do"}
    )
    logging.getLogger("responder.test").debug("hidden")
    [line] = stream.getvalue().splitlines()
    record = json.loads(line)
    assert record["message"] == "would act"
    assert record["level"] == "INFO"
    assert (record["occurrence_id"], record["target"], record["decision"]) == (
        "f1@t",
        "shop/Deployment/api",
        "would_do",
    )


def test_json_lines_include_exceptions(restore_root_logger: None) -> None:
    stream = io.StringIO()
    logs.configure(format="json", level="INFO", stream=stream)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("responder.test").exception("failed")
    record = json.loads(stream.getvalue())
    assert "ValueError: boom" in record["exception"]


def test_text_lines_are_for_humans(restore_root_logger: None) -> None:
    stream = io.StringIO()
    logs.configure(format="text", level="INFO", stream=stream)
    logging.getLogger("responder.test").warning("cancelled", extra={"queue_key": "shop/api"})
    line = stream.getvalue().strip()
    assert "WARNING" in line
    assert line.endswith("cancelled  queue_key=shop/api")


def _json_line(stream: io.StringIO) -> dict[str, Any]:
    [line] = stream.getvalue().splitlines()
    record: dict[str, Any] = json.loads(line)
    return record


def test_json_time_is_utc_with_milliseconds(restore_root_logger: None) -> None:
    stream = io.StringIO()
    logs.configure(format="json", level="INFO", stream=stream)
    logging.getLogger("responder.test").info("tick")
    stamp = _json_line(stream)["time"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", stamp)
    parsed = datetime.datetime.fromisoformat(stamp)
    assert abs((datetime.datetime.now(datetime.UTC) - parsed).total_seconds()) < 60


def test_json_formatter_formats_each_record_at_its_own_time() -> None:
    formatter = logs.JsonFormatter()
    first = logging.LogRecord("t", logging.INFO, "", 0, "a", (), None)
    first.created = 1_800_000_000.5
    second = logging.LogRecord("t", logging.INFO, "", 0, "b", (), None)
    second.created = 1_800_000_001.25
    third = logging.LogRecord("t", logging.INFO, "", 0, "c", (), None)
    third.created = 1_800_000_001.999
    assert [json.loads(formatter.format(r))["time"] for r in (first, second, third)] == [
        "2027-01-15T08:00:00.500+00:00",
        "2027-01-15T08:00:01.250+00:00",
        "2027-01-15T08:00:01.999+00:00",
    ]


def test_json_context_cannot_overwrite_the_line_header(restore_root_logger: None) -> None:
    stream = io.StringIO()
    logs.configure(format="json", level="INFO", stream=stream)
    logging.getLogger("responder.test").info("real", extra={"level_": "x", "mode": Mode.ENFORCE})
    record = _json_line(stream)
    assert (record["message"], record["level"], record["mode"]) == ("real", "INFO", "enforce")


class Mode(enum.StrEnum):
    ENFORCE = "enforce"


FORGED = 'x\n{"level":"INFO","message":"mitigated"}\r\u2028\x85\x1b[31m'


@pytest.mark.parametrize("where", ["field", "message", "nested"])
def test_json_lines_cannot_be_forged_by_control_characters(restore_root_logger: None, where: str) -> None:
    """A newline (or a Unicode line separator, or a terminal escape) in a sender's value stays inside its field."""
    stream = io.StringIO()
    logs.configure(format="json", level="INFO", stream=stream)
    logger = logging.getLogger("responder.test")
    if where == "field":
        logger.info("webhook accepted", extra={"group_key": FORGED})
    elif where == "message":
        logger.info("refused %s", FORGED)
    else:
        logger.info("webhook accepted", extra={"labels": {"pod": FORGED, FORGED: [FORGED]}})
    output = stream.getvalue()
    assert output.isascii() and output.isprintable() is False  # only the final newline is a control character
    assert output.count("\n") == 1 and output.endswith("\n") and "\r" not in output
    record = json.loads(output)
    if where == "field":
        assert record["group_key"] == FORGED
    elif where == "message":
        assert record["message"] == f"refused {FORGED}"
    else:
        assert record["labels"] == {"pod": FORGED, FORGED: [FORGED]}


@pytest.mark.parametrize("where", ["field", "message", "key", "exception"])
def test_text_lines_cannot_be_forged_by_control_characters(restore_root_logger: None, where: str) -> None:
    stream = io.StringIO()
    logs.configure(format="text", level="INFO", stream=stream)
    logger = logging.getLogger("responder.test")
    if where == "field":
        logger.info("webhook accepted", extra={"group_key": FORGED})
    elif where == "message":
        logger.info("refused %s", FORGED)
    elif where == "key":
        logger.info("webhook accepted", extra={FORGED: "v"})
    else:
        try:
            raise ValueError(FORGED)
        except ValueError:
            logger.exception("failed")
    lines = stream.getvalue().split("\n")
    assert lines[-1] == ""
    # One record line; any further line is an indented traceback line.
    assert re.match(r"\d\d:\d\d:\d\d (INFO|ERROR) ", lines[0])
    assert all(line.startswith("    ") for line in lines[1:-1])
    assert all(line.isprintable() for line in lines)
    assert "\\x1b" in stream.getvalue() and "\\u2028" in stream.getvalue() and "\\r" in stream.getvalue()
    if where != "exception":  # a traceback keeps its own lines, each indented
        assert len(lines) == 2 and "\\n" in lines[0]


def test_text_values_that_could_pass_for_fields_are_quoted(restore_root_logger: None) -> None:
    stream = io.StringIO()
    logs.configure(format="text", level="INFO", stream=stream)
    logging.getLogger("responder.test").info(
        "would act", extra={"pod": 'api  decision=would_do "x"', "empty": "", "ids": ["a", "b"], "n": 3}
    )
    line = stream.getvalue().strip()
    assert line.endswith(
        'would act  pod="api  decision=would_do \\"x\\"" empty="" ids="[\\"a\\",\\"b\\"]" n=3'
    )


@pytest.mark.parametrize("format", ["json", "text"])
def test_fields_and_messages_are_capped(restore_root_logger: None, format: str) -> None:
    """A 1 MB groupKey, a huge label set or a huge message makes a line of a few kB, saying what was cut."""
    stream = io.StringIO()
    logs.configure(format=format, level="INFO", stream=stream)
    logging.getLogger("responder.test").info(
        "x" * 1_000_000,
        extra={
            "group_key": "g" * 1_000_000,
            "labels": {f"l{i}": "v" * 5000 for i in range(1000)},
            "ids": list(range(10_000)),
        },
    )
    output = stream.getvalue()
    assert output.count("\n") == 1
    bound = logs.MAX_MESSAGE_CHARS + 2 * logs.MAX_FIELD_CHARS + logs.MAX_ITEMS * (logs.MAX_FIELD_CHARS + 64)
    assert len(output) < bound + 10 * logs.MAX_ITEMS + 1000
    assert f"[{1_000_000 - logs.MAX_FIELD_CHARS} more chars]" in output
    assert f"[{1_000_000 - logs.MAX_MESSAGE_CHARS} more chars]" in output
    assert "9900 more" in output and "900 more" in output
    if format == "json":
        record = json.loads(output)
        assert record["group_key"].startswith("g" * logs.MAX_FIELD_CHARS + "...[")
        assert len(record["labels"]) == logs.MAX_ITEMS + 1
        assert record["ids"][: logs.MAX_ITEMS] == list(range(logs.MAX_ITEMS))


def test_short_values_are_written_unchanged(restore_root_logger: None) -> None:
    stream = io.StringIO()
    logs.configure(format="json", level="INFO", stream=stream)
    value = "g" * logs.MAX_FIELD_CHARS
    logging.getLogger("responder.test").info("ok", extra={"group_key": value, "ratio": 0.5, "none": None})
    record = _json_line(stream)
    assert (record["group_key"], record["ratio"], record["none"]) == (value, 0.5, None)


async def test_a_batch_is_written_when_full_and_a_partial_one_soon_after_its_first_entry(
    caplog: pytest.LogCaptureFixture,
) -> None:
    batch = logs.Batch(logging.getLogger("responder.test"), "things", field="things", delay_seconds=0)
    caplog.set_level(logging.INFO, logger="responder.test")
    for n in range(logs.MAX_ITEMS + 1):
        batch.add({"n": n})
    [full] = caplog.records
    assert (full.getMessage(), full.count) == ("things", logs.MAX_ITEMS)  # type: ignore[attr-defined]
    assert full.things == [{"n": n} for n in range(logs.MAX_ITEMS)]  # type: ignore[attr-defined]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    [_, partial] = caplog.records
    assert partial.things == [{"n": logs.MAX_ITEMS}]  # type: ignore[attr-defined]


def test_a_batch_outside_an_event_loop_writes_each_entry_at_once(caplog: pytest.LogCaptureFixture) -> None:
    batch = logs.Batch(logging.getLogger("responder.test"), "things", field="things")
    caplog.set_level(logging.INFO, logger="responder.test")
    batch.add({"n": 1})
    [record] = caplog.records
    assert record.things == [{"n": 1}]  # type: ignore[attr-defined]


async def test_a_batch_keeps_nothing_when_info_is_off_and_logs_each_entry_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("responder.test")
    batch = logs.Batch(logger, "things", field="things", debug_message="thing")
    caplog.set_level(logging.WARNING, logger="responder.test")
    batch.add({"n": 1})
    batch.flush()
    assert caplog.records == []
    caplog.set_level(logging.DEBUG, logger="responder.test")
    batch.add({"n": 2})
    batch.flush()
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.DEBUG, "thing"),
        (logging.INFO, "things"),
    ]
    assert caplog.records[1].things == [{"n": 2}]  # type: ignore[attr-defined]


async def test_a_tallied_batch_lists_identical_entries_once_with_their_number(
    caplog: pytest.LogCaptureFixture,
) -> None:
    batch = logs.TalliedBatch(logging.getLogger("responder.test"), "webhooks", field="webhooks")
    caplog.set_level(logging.INFO, logger="responder.test")
    for n in range(logs.MAX_ITEMS):
        batch.add_tallied(("g", n % 2), {"group_key": "g", "accepted": n % 2})
    [record] = caplog.records
    assert record.count == logs.MAX_ITEMS  # type: ignore[attr-defined]
    assert record.webhooks == [  # type: ignore[attr-defined]
        {"group_key": "g", "accepted": 0, "count": logs.MAX_ITEMS // 2},
        {"group_key": "g", "accepted": 1, "count": logs.MAX_ITEMS // 2},
    ]
