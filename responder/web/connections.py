"""Connections of the HTTP edge: a bound on how many are held open and how long one may take to say anything.

Stage: web edge. aiohttp bounds neither the number of open connections nor, in every release we support, the
time a new connection may take to send its request headers. A few hundred slow clients could then use up the
process's file descriptors, and the kubelet's probes would fail to connect: the pod would be restarted for
being attacked. `ConnectionGuard` wraps aiohttp's protocol factory: a connection that has not sent complete
headers within `header_timeout_seconds` is closed, and beyond `max_connections` every new connection closes
the oldest one that has not sent a complete request (else the oldest of all), so the newest connection (a
probe, Alertmanager's retry) is always served. It looks at no request beyond noting that one arrived.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from typing import Any

from aiohttp import http_exceptions, typedefs, web, web_protocol

__all__ = [
    "BACKLOG",
    "FILE_DESCRIPTOR_RESERVE",
    "ConnectionGuard",
    "GuardedSite",
    "bounded_by_file_limit",
    "quiet_malformed_requests",
]

logger = logging.getLogger(__name__)

FILE_DESCRIPTOR_RESERVE = 64
"""Descriptors kept free for everything but client connections: the listening socket, the API server and
Slack connections, log files, the interpreter's own."""
BACKLOG = 128
"""The listen backlog. asyncio accepts up to this many connections in one go before the protocol factory
sees any of them, so that many descriptors must be free above the connection bound as well."""


def bounded_by_file_limit(
    max_connections: int, *, reserve: int = FILE_DESCRIPTOR_RESERVE, backlog: int = BACKLOG
) -> int:
    """`max_connections`, lowered so that client connections cannot use up the open-file limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return max_connections
    bound = max(1, soft - reserve - backlog)
    if bound < max_connections:
        logger.warning(
            "server.max_connections lowered to stay below the open-file limit",
            extra={"max_connections": max_connections, "open_file_limit": soft, "lowered_to": bound},
        )
        return bound
    return max_connections


class ConnectionGuard:
    """Wraps aiohttp's protocol factory to bound open connections and the time to a first request."""

    def __init__(self, *, max_connections: int, header_timeout_seconds: float) -> None:
        if max_connections <= 0 or header_timeout_seconds <= 0:
            raise ValueError("max_connections and header_timeout_seconds must be positive")
        self.max_connections = max_connections
        self.header_timeout_seconds = header_timeout_seconds
        self._requested: set[web_protocol.RequestHandler] = set()
        """Connections that have sent at least one complete request head (aiohttp's handlers take no weak
        references: closed ones are dropped against the server's list of open connections)."""
        self._server: web.Server | None = None
        self.closed_slow = 0
        """Connections closed for not sending complete headers in time."""
        self.closed_excess = 0
        """Connections closed to make room for a newer one."""

    @web.middleware
    async def middleware(self, request: web.Request, handler: typedefs.Handler) -> web.StreamResponse:
        """Note that the connection has sent a complete request; must come first among the middlewares."""
        protocol = request.protocol
        if isinstance(protocol, web_protocol.RequestHandler) and protocol not in self._requested:
            self._requested.add(protocol)
            if len(self._requested) > 2 * self.max_connections and self._server is not None:
                self._requested.intersection_update(self._server.connections)
        return await handler(request)

    def factory(self, server: web.Server) -> Any:
        """The protocol factory to listen with, in place of `server` itself."""
        loop = asyncio.get_running_loop()
        self._server = server

        def make() -> web_protocol.RequestHandler:
            self._make_room(server.connections)
            protocol = server()
            loop.call_later(self.header_timeout_seconds, self._expire, protocol)
            return protocol

        return make

    def _make_room(self, connections: list[web_protocol.RequestHandler]) -> None:
        # `connections` is in the order they were made: oldest first.
        excess = len(connections) + 1 - self.max_connections
        if excess <= 0:
            return
        silent = [c for c in connections if c not in self._requested]
        # Those that never sent a request go first: a probe or Alertmanager always completes its headers at
        # once, a slow client does not. Only when every connection is busy do the oldest busy ones go.
        victims = (silent + [c for c in connections if c in self._requested])[:excess]
        for victim in victims:
            victim.force_close()
        self.closed_excess += len(victims)

    def _expire(self, protocol: web_protocol.RequestHandler) -> None:
        if protocol in self._requested or protocol.transport is None:
            return  # it sent a request, or it is closed already
        # Nothing of a request arrived complete: no response is owed, nothing can be lost by closing.
        protocol.force_close()
        self.closed_slow += 1


class GuardedSite(web.BaseSite):
    """A TCP site like aiohttp's `TCPSite`, listening through a `ConnectionGuard`'s factory."""

    __slots__ = ("_guard", "_host", "_port")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        guard: ConnectionGuard,
        backlog: int = BACKLOG,
    ) -> None:
        super().__init__(runner, backlog=backlog)
        self._host = host
        self._port = port
        self._guard = guard

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert isinstance(server, web.Server)
        self._server = await asyncio.get_running_loop().create_server(
            self._guard.factory(server),
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_address=True,
        )


class _MalformedRequests(logging.Filter):
    """aiohttp logs every request its HTTP parser refuses (a NUL in a header, a body that does not decode as
    its Content-Encoding says) at ERROR with a full traceback, although it answers them 400: any client could
    fill the log with tracebacks. Such records become one WARNING line naming the problem."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.exc_info or record.exc_info[1] is None:
            return True
        error: BaseException | None = record.exc_info[1]
        while error is not None and not isinstance(error, http_exceptions.HttpProcessingError):
            error = error.__cause__ or error.__context__
        if error is None:
            return True
        assert isinstance(error, http_exceptions.HttpProcessingError)
        # The parser's message names the problem on its first line; what follows quotes the offending bytes.
        lines = (error.message or type(error).__name__).strip().splitlines() or [type(error).__name__]
        record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
        record.msg, record.args = "malformed request refused with 400: %s", (lines[0][:200],)
        record.exc_info = record.exc_text = None
        return True


_FILTER = _MalformedRequests()


def quiet_malformed_requests() -> None:
    """Install the filter on aiohttp's server logger (idempotent)."""
    server_logger = logging.getLogger("aiohttp.server")
    if _FILTER not in server_logger.filters:
        server_logger.addFilter(_FILTER)
