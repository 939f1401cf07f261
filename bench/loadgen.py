"""Load generator: posts Alertmanager v4 webhooks over keep-alive HTTP/1.1 connections to a loopback URL.

Two modes, both bounded in time and in count and run as their own process (never inside the server):

* closed loop (`--connections N`): N connections each send the next request as soon as the previous answer
  arrives — the maximum throughput the server sustains;
* open loop (`--rate R`): requests are due at fixed times t0 + i/R whatever the server does; latency is measured
  from the time a request was *due*, so a stalled server cannot hide its queueing (no coordinated omission).

Every alert of every request has a fingerprint never sent before (see `bench.payloads`). The client is a bare
asyncio protocol that reads only the status line and the body length: an HTTP client library would make the
generator, not the server, the bottleneck on a 2-core machine. Prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import math
import sys
import time
import urllib.parse
from typing import Any

from bench import payloads

__all__ = ["percentiles", "run"]

_MAX_DURATION_S = 120.0
_MAX_REQUESTS = 5_000_000


class _Conn(asyncio.Protocol):
    """One keep-alive connection; one request in flight at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection lost: {exc}"))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.waiter is not None:
            self._complete()

    def _complete(self) -> None:
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(buf[:end]).lower()
        status = int(head[9:12])
        i = head.find(b"content-length:")
        if i >= 0:
            j = head.find(b"\r\n", i)
            length = int(head[i + 15 : j if j >= 0 else len(head)])
            total = end + 4 + length
            if len(buf) < total:
                return
        elif b"transfer-encoding: chunked" in head:
            k = buf.find(b"\r\n0\r\n\r\n", end)
            if k < 0:
                if buf.find(b"0\r\n\r\n", end + 4) != end + 4:
                    return
                total = end + 9
            else:
                total = k + 7
        else:
            total = end + 4
        del buf[:total]
        waiter, self.waiter = self.waiter, None
        assert waiter is not None
        if not waiter.done():
            waiter.set_result(status)

    def request(self, data: bytes) -> asyncio.Future[int]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        if self.buf:
            self._complete()
        return self.waiter


class _Requests:
    """Builds request bytes with fresh fingerprints."""

    def __init__(self, *, url: str, alerts: int, token: str | None, seq_start: int, run: int) -> None:
        parts = urllib.parse.urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.template = payloads.template(alerts, run=run)
        self.alerts = alerts
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        self.head = (
            f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"User-Agent: Alertmanager/0.25.0\r\nContent-Type: application/json\r\n{auth}"
            "Content-Length: %d\r\n\r\n"
        ).encode()
        self.seq = seq_start

    def next(self) -> bytes:
        self.seq += 1
        body = payloads.render(self.template, self.seq)
        return self.head % len(body) + body


async def _connect(reqs: _Requests) -> _Conn:
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(_Conn, reqs.host, reqs.port)
    return conn


def percentiles(values: list[float]) -> dict[str, float]:
    """p50/p90/p99/p99.9/max/mean of latencies given in seconds, returned in milliseconds."""
    if not values:
        return {}
    s = sorted(values)

    def p(q: float) -> float:
        return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))] * 1000

    return {
        "p50": p(0.50),
        "p90": p(0.90),
        "p99": p(0.99),
        "p999": p(0.999),
        "max": s[-1] * 1000,
        "mean": sum(s) / len(s) * 1000,
    }


async def _closed(
    reqs: _Requests, *, connections: int, duration: float, warmup: float, limit: int
) -> dict[str, Any]:
    conns = [await _connect(reqs) for _ in range(connections)]
    statuses: collections.Counter[int] = collections.Counter()
    latencies: list[float] = []
    errors = 0
    sent = 0
    start = time.perf_counter()
    measure_from = start + warmup
    deadline = measure_from + duration
    clock = time.perf_counter

    async def worker(conn: _Conn) -> None:
        nonlocal errors, sent
        while sent < limit:
            sent += 1
            data = reqs.next()
            t0 = clock()
            if t0 >= deadline:
                return
            try:
                status = await conn.request(data)
            except ConnectionError:
                errors += 1
                return
            t1 = clock()
            if t0 >= measure_from:
                statuses[status] += 1
                latencies.append(t1 - t0)

    await asyncio.gather(*(worker(c) for c in conns))
    elapsed = min(clock(), deadline) - measure_from
    for c in conns:
        if c.transport is not None:
            c.transport.close()
    return _summary(statuses, latencies, errors, elapsed, reqs, mode="closed", connections=connections)


async def _open(
    reqs: _Requests, *, rate: float, duration: float, warmup: float, max_connections: int
) -> dict[str, Any]:
    """Requests due at start + i/rate, taken in turn by a pool of connection workers.

    A worker that is still waiting for an answer when its next request falls due sends it late, and the
    latency counts from the due time, so a slow server is charged for the wait (no coordinated omission).
    A fixed pool instead of a task per request keeps the generator's own cost low at high rates.
    """
    clock = time.perf_counter
    total = int(rate * (warmup + duration))
    interval = 1.0 / rate
    conns = [await _connect(reqs) for _ in range(max_connections)]
    statuses: collections.Counter[int] = collections.Counter()
    latencies: list[float] = []  # from due time (includes waiting for a free connection)
    service: list[float] = []  # from the moment the bytes were written
    errors = 0
    next_index = 0
    start = clock() + 0.05
    measure_from = start + warmup

    async def worker(conn: _Conn) -> None:
        nonlocal next_index, errors
        while next_index < total:
            i = next_index
            next_index += 1
            due = start + i * interval
            delay = due - clock()
            if delay > 0:
                await asyncio.sleep(delay)
            data = reqs.next()
            t_send = clock()
            try:
                status = await conn.request(data)
            except ConnectionError:
                errors += 1
                conn = await _connect(reqs)
                continue
            t1 = clock()
            if due >= measure_from:
                statuses[status] += 1
                latencies.append(t1 - due)
                service.append(t1 - t_send)

    await asyncio.wait_for(asyncio.gather(*(worker(c) for c in conns)), timeout=warmup + duration + 60)
    for c in conns:
        if c.transport is not None:
            c.transport.close()
    result = _summary(statuses, latencies, errors, duration, reqs, mode="open", connections=len(conns))
    result["rate_target"] = rate
    result["service_latency_ms"] = percentiles(service)
    return result


def _summary(
    statuses: collections.Counter[int],
    latencies: list[float],
    errors: int,
    elapsed: float,
    reqs: _Requests,
    *,
    mode: str,
    connections: int,
) -> dict[str, Any]:
    n = sum(statuses.values())
    ok = statuses.get(202, 0) + statuses.get(200, 0)
    return {
        "mode": mode,
        "alerts_per_request": reqs.alerts,
        "body_bytes": len(payloads.render(reqs.template, 0)),
        "connections": connections,
        "elapsed_s": elapsed,
        "requests": n,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "errors": errors,
        "rps": n / elapsed if elapsed > 0 else 0.0,
        "ok_rps": ok / elapsed if elapsed > 0 else 0.0,
        "ok_alerts_per_s": ok * reqs.alerts / elapsed if elapsed > 0 else 0.0,
        "latency_ms": percentiles(latencies),
        "last_seq": reqs.seq,
    }


async def run(
    *,
    url: str,
    alerts: int,
    connections: int = 16,
    rate: float | None = None,
    duration: float = 5.0,
    warmup: float = 1.0,
    token: str | None = None,
    seq_start: int = 0,
    run: int = 0,
    limit: int = _MAX_REQUESTS,
) -> dict[str, Any]:
    """Run one load and return its summary. `rate` set means open loop, else closed loop."""
    host = urllib.parse.urlsplit(url).hostname or ""
    if not (host == "localhost" or host.startswith("127.") or host == "::1"):
        raise SystemExit(f"refusing to load a non-loopback address: {host!r}")
    duration = min(duration, _MAX_DURATION_S)
    reqs = _Requests(url=url, alerts=alerts, token=token, seq_start=seq_start, run=run)
    if rate:
        return await _open(
            reqs, rate=rate, duration=duration, warmup=warmup, max_connections=max(connections, 32)
        )
    return await _closed(
        reqs, connections=connections, duration=duration, warmup=warmup, limit=min(limit, _MAX_REQUESTS)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url", required=True, help="loopback URL of the webhook, e.g. http://127.0.0.1:8080/webhook"
    )
    parser.add_argument("--alerts", type=int, default=1, help="alerts per webhook")
    parser.add_argument(
        "--connections", type=int, default=16, help="closed loop: connections (open loop: max)"
    )
    parser.add_argument("--rate", type=float, default=None, help="open loop: requests per second")
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds (after warm-up)")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of load not measured")
    parser.add_argument("--token", default=None, help="bearer token")
    parser.add_argument(
        "--seq-start", type=int, default=0, help="first sequence number (distinct fingerprints)"
    )
    parser.add_argument(
        "--run", type=int, default=0, help="run number in every fingerprint (0-65535; distinct per load)"
    )
    parser.add_argument(
        "--limit", type=int, default=_MAX_REQUESTS, help="closed loop: at most this many requests"
    )
    parser.add_argument("--uvloop", action="store_true", help="use uvloop if it is installed")
    args = parser.parse_args(argv)
    if args.uvloop:
        try:
            import uvloop  # type: ignore[import-not-found]  # noqa: PLC0415 - optional speed-up

            uvloop.install()
        except ImportError:
            pass
    result = asyncio.run(
        run(
            url=args.url,
            alerts=args.alerts,
            connections=args.connections,
            rate=args.rate,
            duration=args.duration,
            warmup=args.warmup,
            token=args.token,
            seq_start=args.seq_start,
            run=args.run,
            limit=args.limit,
        )
    )
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
