"""Log formatting.

Covers: JSON output is one object per line carrying the `extra` context (occurrence id, target, decision);
the text format is one readable line with the same context; exceptions are included.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from responder import logs


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


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
