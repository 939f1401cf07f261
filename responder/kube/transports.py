"""What the Kubernetes client sends requests through: the `Transport` interface and its answers.

Stage: kube edge. `Answer` (one HTTP answer), `Lines` (a streamed answer read line by line) and
`StreamingUnsupported` are shared by the service's own aiohttp transport (`responder.kube.sessions`) and the
kubernetes-asyncio one for plugin-authenticated kubeconfig users (`responder.kube.plugins`). Data shapes only:
nothing here sends a request, retries, counts or maps an HTTP status to an error (`responder.kube.client` does).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Protocol

__all__ = ["Answer", "Lines", "StreamingUnsupported", "Transport", "no_lines"]


@dataclasses.dataclass(frozen=True)
class Answer:
    """One HTTP answer: `data` is the parsed JSON for a 2xx, the raw body otherwise (for the error)."""

    status: int
    data: Any
    headers: Mapping[str, str]
    reason: str = ""


class Transport(Protocol):
    """Sends one request. Answers every HTTP status; raises aiohttp.ClientError or TimeoutError when there
    was no answer."""

    async def send(
        self,
        method: str,
        path: str,
        *,
        params: list[tuple[str, str]],
        body: Any,
        content_type: str,
        timeout_seconds: float,
    ) -> Answer: ...

    async def read_text(
        self, path: str, *, params: list[tuple[str, str]], limit_bytes: int, timeout_seconds: float
    ) -> Answer:
        """GET a text answer (a pod's log); `data` holds at most `limit_bytes` bytes of it, as bytes."""
        ...

    def connect_websocket(
        self, path: str, *, params: list[tuple[str, str]], protocols: Sequence[str], timeout_seconds: float
    ) -> Any:
        """An async context manager yielding an aiohttp websocket (the streaming subresources)."""
        ...

    def open_lines(
        self, path: str, *, params: list[tuple[str, str]], timeout_seconds: float
    ) -> contextlib.AbstractAsyncContextManager[Lines]:
        """GET a streamed answer read line by line (a watch); `timeout_seconds` bounds the whole stream."""
        ...

    async def close(self) -> None: ...


@dataclasses.dataclass(frozen=True)
class Lines:
    """A streamed answer: for a 2xx, `lines` yields it line by line; otherwise `error` holds the body."""

    status: int
    lines: AsyncIterator[bytes]
    headers: Mapping[str, str]
    reason: str = ""
    error: str = ""


class StreamingUnsupported(Exception):
    """This transport cannot stream: kubeconfig users authenticated by a plugin go through kubernetes-asyncio,
    which offers no websocket here."""


async def no_lines() -> AsyncIterator[bytes]:
    return
    yield b""  # an async generator that yields nothing
