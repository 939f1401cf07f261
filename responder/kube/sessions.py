"""The service's own transport to the API server: one aiohttp session, plain requests, logs, watches, websockets.

Stage: kube edge. Sends what `responder.kube.client.Kube` asks with the credentials of `responder.kube.credentials`
(re-reading a rotated token file once after a 401) and answers every HTTP status as a `transports.Answer` or
`transports.Lines`; it raises only aiohttp's errors or TimeoutError when there was no answer. It does not throttle,
retry, count or map statuses to errors: `responder.kube.client` does.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp

from responder.kube import credentials, transports

__all__ = ["MAX_STREAMED_LINE_BYTES", "USER_AGENT", "AiohttpTransport"]

USER_AGENT = "oom-responder"

MAX_STREAMED_LINE_BYTES = 4 * 1024 * 1024
"""Longest watch event read (etcd stores objects up to 1.5 MB; JSON of one is at most a few MB)."""


async def _split_lines(content: aiohttp.StreamReader, *, max_line_bytes: int) -> AsyncIterator[bytes]:
    # StreamReader.readline() refuses lines over 64 KiB; one watch event is one object, up to etcd's 1.5 MB.
    pending = b""
    async for chunk in content.iter_any():
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            if line:
                yield line
        if len(pending) > max_line_bytes:
            raise ValueError(f"a streamed line exceeds {max_line_bytes} bytes")
    if pending:
        yield pending


async def _read_up_to(stream: aiohttp.StreamReader, limit_bytes: int) -> bytes:
    """At most `limit_bytes` of a streamed body, to its end: `read(n)` returns what has arrived so far, and a
    log is streamed in chunks."""
    chunks: list[bytes] = []
    size = 0
    while size < limit_bytes:
        chunk = await stream.read(limit_bytes - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


class AiohttpTransport:
    """The service's own transport: one aiohttp session to one API server."""

    def __init__(self, creds: credentials.Credentials, *, pool_size: int = 100) -> None:
        self.credentials = creds
        # No context means an http:// server (a local proxy); True is aiohttp's default and is not used there.
        connector = aiohttp.TCPConnector(ssl=creds.ssl_context or True, limit=pool_size)
        self.session = aiohttp.ClientSession(
            connector=connector,
            headers={"Accept": "application/json", "User-Agent": USER_AGENT},
            # A body's Content-Type is set per call (JSON, merge, strategic-merge or JSON patch), never guessed.
            skip_auto_headers=("Content-Type",),
            # HTTPS_PROXY / NO_PROXY from the environment, as client-go and kubernetes-asyncio honour them.
            trust_env=True,
        )

    async def send(
        self,
        method: str,
        path: str,
        *,
        params: list[tuple[str, str]],
        body: Any,
        content_type: str,
        timeout_seconds: float,
    ) -> transports.Answer:
        arguments: dict[str, Any] = {
            "params": params,
            "body": body,
            "content_type": content_type,
            "timeout_seconds": timeout_seconds,
        }
        answer = await self._send(method, path, **arguments)
        # A token file replaced just now (a rotated projected token) is read again at once and the request
        # retried once; a fixed token or certificate has nothing to renew.
        if answer.status == 401 and self.credentials.reload_token():
            answer = await self._send(method, path, **arguments)
        return answer

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: list[tuple[str, str]],
        body: Any,
        content_type: str,
        timeout_seconds: float,
    ) -> transports.Answer:
        headers: dict[str, str] = {}
        authorization = self.credentials.authorization()
        if authorization:
            headers["Authorization"] = authorization
        data: bytes | None = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
        extra: dict[str, Any] = {}
        if self.credentials.tls_server_name:
            extra["server_hostname"] = self.credentials.tls_server_name
        if self.credentials.proxy_url:
            extra["proxy"] = self.credentials.proxy_url
        async with self.session.request(
            method,
            self.credentials.server + path,
            params=params or None,
            data=data,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout_seconds),
            allow_redirects=False,
            **extra,
        ) as response:
            raw = await response.read()
            status = response.status
            if 200 <= status < 300:
                try:
                    parsed: Any = json.loads(raw) if raw else {}
                except ValueError:
                    parsed = {}
                return transports.Answer(
                    status=status, data=parsed, headers=response.headers, reason=response.reason or ""
                )
            return transports.Answer(
                status=status,
                data=raw.decode("utf-8", "replace"),
                headers=response.headers,
                reason=response.reason or "",
            )

    def _extra(self) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self.credentials.tls_server_name:
            extra["server_hostname"] = self.credentials.tls_server_name
        if self.credentials.proxy_url:
            extra["proxy"] = self.credentials.proxy_url
        return extra

    def _auth_headers(self) -> dict[str, str]:
        authorization = self.credentials.authorization()
        return {"Authorization": authorization} if authorization else {}

    async def read_text(
        self, path: str, *, params: list[tuple[str, str]], limit_bytes: int, timeout_seconds: float
    ) -> transports.Answer:
        async with self.session.get(
            self.credentials.server + path,
            params=params or None,
            headers={**self._auth_headers(), "Accept": "*/*"},
            timeout=aiohttp.ClientTimeout(total=timeout_seconds),
            allow_redirects=False,
            **self._extra(),
        ) as response:
            status = response.status
            if 200 <= status < 300:
                # The server's limitBytes bounds the answer already; this bounds what a server that ignores
                # it could make the service hold.
                raw = await _read_up_to(response.content, limit_bytes)
                return transports.Answer(
                    status=status, data=raw, headers=response.headers, reason=response.reason or ""
                )
            body = await response.content.read(64 * 1024)
            return transports.Answer(
                status=status,
                data=body.decode("utf-8", "replace"),
                headers=response.headers,
                reason=response.reason or "",
            )

    def connect_websocket(
        self, path: str, *, params: list[tuple[str, str]], protocols: Sequence[str], timeout_seconds: float
    ) -> Any:
        return self.session.ws_connect(
            self.credentials.server + path,
            params=params,
            protocols=tuple(protocols),
            headers=self._auth_headers(),
            timeout=aiohttp.ClientWSTimeout(ws_close=min(timeout_seconds, 10.0)),
            autoping=True,
            # Frames carry one channel byte plus a chunk of output; the kubelet sends at most 32 KiB at a time.
            max_msg_size=1024 * 1024,
            **self._extra(),
        )

    @contextlib.asynccontextmanager
    async def open_lines(
        self, path: str, *, params: list[tuple[str, str]], timeout_seconds: float
    ) -> AsyncIterator[transports.Lines]:
        async with self.session.get(
            self.credentials.server + path,
            params=params or None,
            headers=self._auth_headers(),
            timeout=aiohttp.ClientTimeout(total=timeout_seconds),
            allow_redirects=False,
            **self._extra(),
        ) as response:
            status = response.status
            if 200 <= status < 300:
                lines = _split_lines(response.content, max_line_bytes=MAX_STREAMED_LINE_BYTES)
                yield transports.Lines(
                    status=status, lines=lines, headers=response.headers, reason=response.reason or ""
                )
                return
            body = await response.content.read(64 * 1024)
            yield transports.Lines(
                status=status,
                lines=transports.no_lines(),
                headers=response.headers,
                reason=response.reason or "",
                error=body.decode("utf-8", "replace"),
            )

    async def close(self) -> None:
        await self.session.close()
