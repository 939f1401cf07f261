"""A trivial HTTP/1.1 server that answers 202 to every request without parsing its body.

It exists only to measure the load generator's own ceiling: whatever rate the generator reaches against this
server is the most it can ever show for a real one on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

_RESPONSE = b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            i = buf.find(b"Content-Length: ", 0, end)
            length = int(buf[i + 16 : buf.find(b"\r\n", i)]) if i >= 0 else 0
            total = end + 4 + length
            if len(buf) < total:
                return
            del buf[:total]
            assert self.transport is not None
            self.transport.write(_RESPONSE)


async def _serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Protocol, host, port, reuse_address=True)
    print(f"listening on {host}:{server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.null_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
