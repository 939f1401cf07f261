"""POST /webhook fuzzed with hypothesis: webhook-shaped payloads with hostile values, broken JSON, raw bytes,
odd headers, sent byte for byte over a socket to the app as `serve` wires it without a cluster.

Covers, for every request: no 5xx; an answer other than 202 is a JSON error and leads to no decision at all;
a 202 leads to exactly one decision per alert it counts as accepted, resolved or refused (never none: nothing
acknowledged is dropped; never two: nothing is handled twice), each for a different occurrence: the refusal
line of the receiver, or the label-only handler's decision (counted on its DEBUG line; at INFO the same
entries are written in batches).
A few thousand cases by default; `OOM_RESPONDER_FUZZ_EXAMPLES` sets how many. At the end the number of
requests tried and the count of each status are printed, and written as JSON to `OOM_RESPONDER_FUZZ_REPORT`
when that is set.
"""

from __future__ import annotations

import asyncio
import collections
import datetime
import gzip
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from responder import metrics as metrics_mod
from responder.commands import serving
from responder.models import settings
from responder.web import app as app_mod
from responder.web import auth

EXAMPLES = int(os.environ.get("OOM_RESPONDER_FUZZ_EXAMPLES", "2000"))
TOKEN = "fuzz-token"

# --- what is sent ---------------------------------------------------------------------------------------------

_HOSTILE_NAMES = ["..", ".", "", "a/b", "../..", "API", "x\n", "-a", "a" * 300, "%2e%2e", "ns\x00", "ü"]
_names = st.one_of(
    st.from_regex(r"[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?", fullmatch=True),
    st.sampled_from(_HOSTILE_NAMES),
    st.text(max_size=40),
)
_alertnames = st.one_of(
    st.sampled_from(["OOMKilled", "PodMemoryHigh", "PodRestartingFrequently", "CPUThrottlingHigh"]),
    st.text(max_size=20),
)
_timestamps = st.one_of(
    st.datetimes(min_value=datetime.datetime(1, 1, 1), timezones=st.sampled_from([datetime.UTC, None])).map(
        lambda d: d.isoformat()
    ),
    st.sampled_from(["0001-01-01T00:00:00Z", "2024-05-01T10:00:00.000Z", "2024-13-01T00:00:00Z", "now"]),
    st.text(max_size=30),
    st.integers(),
    st.none(),
)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
_labels = st.fixed_dictionaries(
    {"alertname": _alertnames},
    optional={
        "namespace": _names,
        "pod": _names,
        "container": _names,
        "workload": _names,
        "workload_kind": st.sampled_from(["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Node"]),
        "severity": st.text(max_size=10),
        "other": st.text(max_size=30),
    },
)
_alert = st.fixed_dictionaries(
    {
        "status": st.sampled_from(["firing", "resolved"]) | st.text(max_size=8),
        "labels": _labels | _json_values,
        "startsAt": _timestamps,
    },
    optional={
        "endsAt": _timestamps,
        "fingerprint": st.text(max_size=20) | st.none() | st.integers(),
        "annotations": st.dictionaries(st.text(max_size=10), st.text(max_size=30), max_size=3) | _json_values,
        "generatorURL": st.text(max_size=40),
        "extra": _json_values,
    },
)
_payload = st.fixed_dictionaries(
    {
        "version": st.sampled_from(["4", "4", "4", "3", 4]),
        "groupKey": st.text(max_size=60),
        "status": st.sampled_from(["firing", "resolved", "pending"]),
        "receiver": st.text(max_size=20),
        "alerts": st.lists(_alert, max_size=6) | _json_values,
    },
    optional={
        "truncatedAlerts": st.integers(min_value=-5, max_value=10**12),
        "groupLabels": st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=2) | _json_values,
        "commonLabels": st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=2),
        "externalURL": st.text(max_size=30),
    },
)


_label_values = st.one_of(
    st.from_regex(r"[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?", fullmatch=True),
    st.from_regex(r"[a-z]{1,8}-[0-9a-f]{5}", fullmatch=True),
    st.from_regex(r"[a-z]{1,8}(\.[a-z]{1,8})?", fullmatch=True),
    st.sampled_from(_HOSTILE_NAMES),
)
_valid_alert = st.fixed_dictionaries(
    {
        "status": st.sampled_from(["firing", "firing", "resolved"]),
        "labels": st.fixed_dictionaries(
            {
                "alertname": st.sampled_from(["OOMKilled", "PodMemoryHigh", "PodRestartingFrequently", "X"]),
                "namespace": _label_values,
                "pod": _label_values,
            },
            optional={"container": _label_values, "workload": _label_values, "severity": st.text(max_size=8)},
        ),
        "startsAt": st.datetimes(
            min_value=datetime.datetime(2000, 1, 1), timezones=st.just(datetime.UTC)
        ).map(lambda d: d.isoformat()),
    },
    optional={
        "fingerprint": st.from_regex(r"[0-9a-f]{16}", fullmatch=True),
        "endsAt": st.just("0001-01-01T00:00:00Z"),
    },
)
_valid_payload = st.fixed_dictionaries(
    {
        "version": st.just("4"),
        "groupKey": st.text(max_size=60),
        "status": st.sampled_from(["firing", "resolved"]),
        "receiver": st.text(max_size=20),
        "alerts": st.lists(_valid_alert, max_size=8),
        "truncatedAlerts": st.integers(min_value=0, max_value=1000),
    }
)


@st.composite
def _bodies(draw: st.DrawFn) -> bytes:
    """A webhook payload (valid with hostile values, or broken on purpose), JSON-shaped garbage, raw bytes."""
    kind = draw(
        st.sampled_from(["valid"] * 6 + ["payload", "payload", "truncated", "nested", "json", "bytes"])
    )
    if kind == "valid":
        return json.dumps(draw(_valid_payload), ensure_ascii=draw(st.booleans())).encode()
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "json":
        return json.dumps(draw(_json_values)).encode()
    if kind == "nested":
        depth = draw(st.integers(min_value=1, max_value=3000))
        return b"[" * depth + b"]" * draw(st.integers(min_value=0, max_value=depth))
    body = json.dumps(draw(_payload), ensure_ascii=draw(st.booleans())).encode()
    if kind == "truncated":
        return body[: draw(st.integers(min_value=0, max_value=len(body)))]
    return body


_header_bytes = st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"").lstrip())


@st.composite
def _requests(draw: st.DrawFn) -> tuple[dict[bytes, bytes], bytes]:
    body = draw(_bodies())
    headers: dict[bytes, bytes] = {}
    auth_choice = draw(st.sampled_from(["good"] * 12 + ["none", "raw", "basic"]))
    if auth_choice == "good":
        headers[b"Authorization"] = b"Bearer " + TOKEN.encode()
    elif auth_choice == "raw":
        headers[b"Authorization"] = b"Bearer " + draw(_header_bytes)
    elif auth_choice == "basic":
        headers[b"Authorization"] = b"Basic " + draw(_header_bytes)
    content_type = draw(
        st.sampled_from(
            [b"application/json"] * 12 + [b"application/json; charset=latin-1", b"text/plain", None]
        )
    )
    headers[b"Content-Type"] = draw(_header_bytes) if content_type is None else content_type
    encoding = draw(st.sampled_from([None] * 12 + ["gzip-real", "gzip-fake", "deflate-fake", "bogus"]))
    if encoding == "gzip-real":
        body = gzip.compress(body)
        headers[b"Content-Encoding"] = b"gzip"
    elif encoding is not None:
        headers[b"Content-Encoding"] = encoding.split("-")[0].encode()
    return headers, body


# --- where it is sent -----------------------------------------------------------------------------------------


class Decisions(logging.Handler):
    """Every log record that states a decision about one alert (it has a `decision` attribute)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if hasattr(record, "decision"):
            self.records.append(record)


@pytest.fixture
def decisions() -> Iterator[Decisions]:
    handler = Decisions()
    loggers = [logging.getLogger(name) for name in ("responder.commands.serving", "responder.web.receiving")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
    # The label-only handler logs its decisions in batches at INFO and each one on its own line at DEBUG;
    # the DEBUG line is written at once, so it is the one counted here.
    loggers[0].setLevel(logging.DEBUG)
    loggers[1].setLevel(logging.INFO)
    yield handler
    for logger, level in zip(loggers, levels, strict=True):
        logger.removeHandler(handler)
        logger.setLevel(level)


async def _send(port: int, headers: dict[bytes, bytes], body: bytes) -> tuple[int, bytes]:
    """The status and the JSON body of the answer (empty when the answer is not JSON)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = b"POST /webhook HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n"
    head += b"".join(name + b": " + value + b"\r\n" for name, value in headers.items())
    head += b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    writer.write(head + body)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), timeout=30)
    writer.close()
    head_bytes, _, content = answer.partition(b"\r\n\r\n")
    status_line, *lines = head_bytes.split(b"\r\n")
    json_body = any(line.lower().startswith(b"content-type: application/json") for line in lines)
    return int(status_line.split()[1]), content if json_body else b""


def test_no_request_gets_a_5xx_and_every_202_leads_to_one_decision_per_alert(
    decisions: Decisions, capsys: pytest.CaptureFixture[str]
) -> None:
    from aiohttp import test_utils  # noqa: PLC0415 - the test server lives on this test's own loop

    config = settings.Settings.model_validate(
        {"server": {"max_body_bytes": 64 * 1024}, "dedup": {"ttl_seconds": 3600}}
    )
    metrics = metrics_mod.Metrics(CollectorRegistry())
    handler, readiness, cleanup = serving.build_handler(config, metrics)
    loop = asyncio.new_event_loop()
    app = app_mod.make_app(
        settings=config,
        metrics=metrics,
        handler=handler,
        readiness=readiness,
        authenticator=auth.Authenticator(bearer_token=TOKEN),
    )
    server = test_utils.TestServer(app, loop=loop)
    loop.run_until_complete(server.start_server())
    assert server.port is not None
    port = server.port
    statuses: collections.Counter[int] = collections.Counter()
    kinds_of_202: collections.Counter[str] = collections.Counter()

    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(hypothesis.HealthCheck),
        derandomize=os.environ.get("OOM_RESPONDER_FUZZ_SEED") is None,
    )
    @hypothesis.given(request=_requests())
    def check(request: tuple[dict[bytes, bytes], bytes]) -> None:
        headers, body = request
        before = len(decisions.records)
        status, content = loop.run_until_complete(_send(port, headers, body))
        loop.run_until_complete(app[app_mod.QUEUE].wait_idle())
        statuses[status] += 1
        made = decisions.records[before:]
        assert status < 500, (status, content[:300])
        if status != 202:
            assert made == []
            # aiohttp's HTTP parser answers a request it cannot parse (a NUL in a header, an encoding it has
            # no decoder for) with a plain-text 400 before the application sees it; every other error is ours.
            if content or status != 400:
                assert "error" in json.loads(content), content
            return
        answer: dict[str, Any] = json.loads(content)
        expected = answer["accepted"] + answer["resolved"] + answer["refused"]
        for key in ("accepted", "resolved", "refused", "duplicates", "ignored"):
            if answer[key]:
                kinds_of_202[key] += answer[key]
        occurrences = [record.occurrence_id for record in made]  # type: ignore[attr-defined]
        assert len(made) == expected, (answer, [r.getMessage() for r in made])
        assert len(set(occurrences)) == len(occurrences), occurrences

    try:
        check()
    finally:
        loop.run_until_complete(cleanup())
        loop.run_until_complete(server.close())
        loop.close()
    report = {
        "requests": sum(statuses.values()),
        "statuses": {str(code): n for code, n in sorted(statuses.items())},
        "alerts_in_202s": dict(kinds_of_202),
    }
    with capsys.disabled():
        print(f"\nwebhook fuzz: {json.dumps(report)}")
    if path := os.environ.get("OOM_RESPONDER_FUZZ_REPORT"):
        Path(path).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    assert statuses[202] > 0 and statuses[422] > 0 and statuses[400] > 0 and statuses[401] > 0
