"""The connection guard of the HTTP edge, on a real listening socket.

Covers: a connection that sends nothing, or request headers that never complete, is closed after
`header_timeout_seconds`, while one that sent a request is not; beyond `max_connections` the oldest silent
connections are closed so that the newest one (a probe) is answered; when every connection has sent a
request, the oldest of them goes; the bound is lowered below the open-file limit; the keep-alive idle timeout
is passed to aiohttp.
"""

from __future__ import annotations

import asyncio
import resource
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from responder.web import connections


async def _hello(request: web.Request) -> web.Response:
    return web.json_response({"alive": True})


class Site:
    def __init__(self, runner: web.AppRunner, guard: connections.ConnectionGuard, port: int) -> None:
        self.runner = runner
        self.guard = guard
        self.port = port

    @property
    def open_connections(self) -> int:
        assert self.runner.server is not None
        return len(self.runner.server.connections)

    async def connect(self, first_bytes: bytes = b"") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        if first_bytes:
            writer.write(first_bytes)
            await writer.drain()
        return reader, writer

    async def get(self) -> bytes:
        reader, writer = await self.connect(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), timeout=5)
        writer.close()
        return answer.split(b"\r\n")[0]


@pytest.fixture
async def start_site() -> AsyncIterator[object]:
    runners: list[web.AppRunner] = []

    async def start(*, max_connections: int, header_timeout_seconds: float) -> Site:
        guard = connections.ConnectionGuard(
            max_connections=max_connections, header_timeout_seconds=header_timeout_seconds
        )
        app = web.Application(middlewares=[guard.middleware])
        app.router.add_get("/healthz", _hello)
        runner = web.AppRunner(app, keepalive_timeout=30)
        await runner.setup()
        runners.append(runner)
        site = connections.GuardedSite(runner, "127.0.0.1", 0, guard=guard)
        await site.start()
        [address] = runner.addresses
        return Site(runner, guard, address[1])

    yield start
    for runner in runners:
        await runner.cleanup()


async def _is_closed(reader: asyncio.StreamReader) -> bool:
    """Whether the server closes the connection (what was left unread of an answer does not matter)."""
    try:
        await asyncio.wait_for(reader.read(), timeout=5)  # returns only at end of stream
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return reader.at_eof()


async def test_a_connection_that_never_completes_its_headers_is_closed(start_site: object) -> None:
    site = await start_site(max_connections=50, header_timeout_seconds=0.3)  # type: ignore[operator]  # fixture factory
    # Writers are kept referenced: a collected StreamWriter closes its connection from the client's side.
    silent, silent_writer = await site.connect()
    partial, partial_writer = await site.connect(b"POST /webhook HTTP/1.1\r\nHost: t\r\nX-Slow: ")
    assert await _is_closed(silent)
    assert await _is_closed(partial)
    assert site.guard.closed_slow == 2
    silent_writer.close()
    partial_writer.close()


async def test_a_connection_that_sent_a_request_is_kept_for_keep_alive(start_site: object) -> None:
    site = await start_site(max_connections=50, header_timeout_seconds=0.2)  # type: ignore[operator]  # fixture factory
    reader, writer = await site.connect(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
    assert (await reader.readuntil(b"\r\n")).startswith(b"HTTP/1.1 200")
    await asyncio.sleep(0.5)  # past the header timeout: the connection is idle keep-alive, not slow
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    rest = await asyncio.wait_for(reader.read(), timeout=5)
    assert b"HTTP/1.1 200" in rest
    assert site.guard.closed_slow == 0


async def test_beyond_the_bound_the_oldest_silent_connections_make_room_for_a_probe(
    start_site: object,
) -> None:
    site = await start_site(max_connections=5, header_timeout_seconds=60)  # type: ignore[operator]  # fixture factory
    busy_reader, busy_writer = await site.connect(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
    assert (await busy_reader.readuntil(b"\r\n")).startswith(b"HTTP/1.1 200")
    silent = [await site.connect() for _ in range(10)]
    assert await site.get() == b"HTTP/1.1 200 OK"
    closed = [await _is_closed(reader) for reader, _ in silent[:7]]
    assert all(closed)
    assert site.open_connections <= 5
    # The connection that had sent a request was not among those closed while silent ones were left.
    busy_writer.write(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert b"HTTP/1.1 200" in await asyncio.wait_for(busy_reader.read(), timeout=5)
    for _, writer in silent:
        writer.close()


async def test_when_every_connection_has_sent_a_request_the_oldest_goes(start_site: object) -> None:
    site = await start_site(max_connections=3, header_timeout_seconds=60)  # type: ignore[operator]  # fixture factory
    kept = []
    for _ in range(3):
        reader, writer = await site.connect(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        assert (await reader.readuntil(b"\r\n")).startswith(b"HTTP/1.1 200")
        kept.append((reader, writer))
    assert await site.get() == b"HTTP/1.1 200 OK"
    assert await _is_closed(kept[0][0])
    assert site.guard.closed_excess >= 1
    for _, writer in kept:
        writer.close()


def test_the_bound_stays_below_the_open_file_limit() -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert (
        connections.bounded_by_file_limit(10**9)
        == soft - connections.FILE_DESCRIPTOR_RESERVE - connections.BACKLOG
    )
    assert connections.bounded_by_file_limit(5) == 5
