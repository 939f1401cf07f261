"""POST /webhook under hostile requests sent as raw bytes: each ends in a JSON 4xx, never a 500.

Covers: an Authorization header carrying a byte that is not UTF-8 (401, not a UnicodeEncodeError); JSON nested
deeper than the parser's limit, at depths where the stdlib fallback would hit the recursion limit (400 naming
the depth); a Content-Encoding the body does not match (400 naming the encoding), while a body that really is
gzip-compressed is accepted and a compressed body over the cap still gets 413; a body trickled slower than
`server.body_timeout_seconds` (408). Nothing refused reaches the queue, and each refusal is counted by status.
A request aiohttp's own parser refuses, or a body that does not decode, is logged as one WARNING line naming
the problem, never as an ERROR with a traceback (any client could fill the log with them).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
from typing import Any

import pytest

from tests.unit import payloads
from tests.unit.web.conftest import TOKEN, Service, ServiceFactory


async def _raw(
    service: Service, *, headers: dict[str, bytes], body: bytes, trickle: float | None = None
) -> tuple[int, dict[str, Any]]:
    """Send one request byte for byte as given; the status and the JSON body of the answer."""
    server = service.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    head = b"POST /webhook HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
    head += b"".join(name.encode() + b": " + value + b"\r\n" for name, value in headers.items())
    if trickle is None:
        writer.write(head + b"\r\n" + body)
    else:
        # Half of the body, then nothing: the server must give up on it.
        writer.write(head + b"\r\n" + body[: len(body) // 2])
    await writer.drain()
    # Read by Content-Length: after refusing a body half sent, the server may keep reading what follows.
    head_bytes = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
    status_line, *lines = head_bytes.decode().split("\r\n")
    length = next(int(line.split(":")[1]) for line in lines if line.lower().startswith("content-length:"))
    content = await asyncio.wait_for(reader.readexactly(length), timeout=10)
    writer.close()
    return int(status_line.split()[1]), json.loads(content)


def _headers(body: bytes, **extra: bytes) -> dict[str, bytes]:
    return {
        "Authorization": b"Bearer " + TOKEN.encode(),
        "Content-Type": b"application/json",
        "Content-Length": str(len(body)).encode(),
        **{name.replace("_", "-"): value for name, value in extra.items()},
    }


GOOD = json.dumps(payloads.payload(payloads.alert(fingerprint="f1"))).encode()


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(b"Bearer \xff", id="bearer-raw-byte"),
        pytest.param(b"Bearer " + TOKEN.encode() + b"\xfe", id="token-plus-raw-byte"),
        pytest.param(b"Basic \xff\xfe", id="basic-raw-bytes"),
        pytest.param(b"\xff " + TOKEN.encode(), id="raw-byte-scheme"),
    ],
)
async def test_a_header_with_bytes_that_are_not_utf8_gets_401(
    make_service: ServiceFactory, authorization: bytes
) -> None:
    service = await make_service()
    status, body = await _raw(service, headers={**_headers(GOOD), "Authorization": authorization}, body=GOOD)
    assert (status, body["error"]) == (401, "unauthorized")
    assert service.queued() == []
    assert service.registry.get_sample_value("oom_responder_webhook_requests_total", {"code": "401"}) == 1
    assert service.registry.get_sample_value("oom_responder_webhook_requests_total", {"code": "500"}) is None


@pytest.mark.parametrize(
    ("body", "where"),
    [
        pytest.param(b"[" * 1000 + b"]" * 1000, "line 1 column 202", id="arrays-1000"),
        pytest.param(b'{"a":' * 5000 + b"1" + b"}" * 5000, "line 1 column 1006", id="objects-5000"),
        pytest.param(b"[" * 300 + b"]" * 300, "line 1 column 202", id="arrays-300"),
    ],
)
async def test_json_nested_too_deep_gets_400_naming_the_depth(
    make_service: ServiceFactory, body: bytes, where: str
) -> None:
    service = await make_service()
    status, answer = await _raw(service, headers=_headers(body), body=body)
    assert status == 400
    assert answer == {"error": "malformed JSON", "detail": [f"{where}: nested deeper than 200 levels"]}
    assert service.queued() == []


@pytest.mark.parametrize("encoding", [b"gzip", b"deflate"])
async def test_a_body_that_does_not_match_its_content_encoding_gets_400(
    make_service: ServiceFactory, encoding: bytes
) -> None:
    service = await make_service()
    status, answer = await _raw(service, headers=_headers(GOOD, Content_Encoding=encoding), body=GOOD)
    assert status == 400
    assert answer == {
        "error": "undecodable body",
        "detail": [f"Content-Encoding: {encoding.decode()}: the body does not decode"],
    }
    assert service.queued() == []
    assert service.registry.get_sample_value("oom_responder_webhook_requests_total", {"code": "400"}) == 1


async def test_a_really_compressed_body_is_accepted_and_capped_after_decoding(
    make_service: ServiceFactory,
) -> None:
    service = await make_service(server={"max_body_bytes": 100_000})
    packed = gzip.compress(GOOD)
    status, answer = await _raw(service, headers=_headers(packed, Content_Encoding=b"gzip"), body=packed)
    assert (status, answer["accepted"]) == (202, 1)
    # 2 MB of blanks compress to a few KB: the cap counts what it decodes to.
    bomb = gzip.compress(GOOD[:-1] + b" " * 2_000_000 + b"}")
    status, answer = await _raw(service, headers=_headers(bomb, Content_Encoding=b"gzip"), body=bomb)
    assert (status, answer["error"]) == (413, "payload too large")
    assert len(await service.settle()) == 1


async def test_a_body_trickled_slower_than_the_timeout_gets_408(make_service: ServiceFactory) -> None:
    service = await make_service(server={"body_timeout_seconds": 0.2})
    status, answer = await _raw(service, headers=_headers(GOOD), body=GOOD, trickle=0.2)
    assert status == 408
    assert answer == {
        "error": "request body too slow",
        "detail": ["the body was not complete within 0.2 s (server.body_timeout_seconds)"],
    }
    assert service.queued() == []


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        pytest.param(
            _headers(GOOD, Content_Encoding=b"gzip"), "Can not decode content-encoding: gzip", id="gzip"
        ),
        pytest.param(
            {**_headers(GOOD), "Content-Type": b"\x00"}, "Invalid header value char", id="nul-header"
        ),
    ],
)
async def test_a_malformed_request_is_one_warning_line_not_a_traceback(
    make_service: ServiceFactory, caplog: pytest.LogCaptureFixture, headers: dict[str, bytes], problem: str
) -> None:
    service = await make_service()
    with caplog.at_level(logging.DEBUG, logger="aiohttp.server"):
        status, _ = await _raw_status(service, headers=headers, body=GOOD)
    assert status == 400
    records = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert records, "nothing logged"
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in records), [
        (r.levelname, r.getMessage()) for r in records
    ]
    assert any(r.getMessage().startswith(f"malformed request refused with 400: {problem}") for r in records)


async def _raw_status(service: Service, *, headers: dict[str, bytes], body: bytes) -> tuple[int, bytes]:
    """Like `_raw`, for answers that may not be JSON (aiohttp's parser answers in plain text)."""
    server = service.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    head = b"POST /webhook HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
    head += b"".join(name.encode() + b": " + value + b"\r\n" for name, value in headers.items())
    writer.write(head + b"\r\n" + body)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), timeout=15)
    writer.close()
    return int(answer.split(b"\r\n")[0].split()[1]), answer
