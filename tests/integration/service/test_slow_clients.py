"""`oom-responder serve` under a slow-connection attack, as a separate process with an open-file limit of 256.

Covers: 300 clients that open connections and send their request headers a byte at a time (and reconnect when
dropped) do not take the probes down: every /healthz and /readyz asked meanwhile is answered 200 within the
kubelet's default probe timeout (1 s), and a webhook posted meanwhile is accepted; the server closed slow
connections itself (its log says how far it lowered the connection bound for the file limit). No cluster is
needed: the service runs in dry-run without one and plans from labels.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import yaml

OPEN_FILE_LIMIT = 256
ATTACKERS = 300
PROBE_TIMEOUT_SECONDS = 1.0
"""The kubelet's default `timeoutSeconds` for a probe."""
TOKEN = "slow-clients-token"


_readers: set[asyncio.Task[None]] = set()


def _limit_open_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILE_LIMIT, OPEN_FILE_LIMIT))


async def _start(tmp_path: Path) -> tuple[asyncio.subprocess.Process, str, list[dict[str, Any]]]:
    config = tmp_path / "responder.yaml"
    config.write_text(
        yaml.safe_dump({"server": {"host": "127.0.0.1", "port": 0, "header_timeout_seconds": 2}}),
        encoding="utf-8",
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith(("KUBE", "OOM_RESPONDER"))}
    env.update(HOME=str(tmp_path), OOM_RESPONDER_WEBHOOK_TOKEN=TOKEN)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "responder.cli",
        "serve",
        "--config",
        str(config),
        env=env,
        stderr=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        preexec_fn=_limit_open_files,
    )
    logs: list[dict[str, Any]] = []
    listening: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def read() -> None:
        # Read to the end: a full pipe would block the service's logging, and with it the service.
        assert process.stderr is not None
        while line := await process.stderr.readline():
            with contextlib.suppress(ValueError):
                logs.append(json.loads(line))
            if logs and logs[-1].get("message") == "listening" and not listening.done():
                listening.set_result(f"http://{logs[-1]['addresses'][0]}")

    reader = asyncio.create_task(read())
    done, _ = await asyncio.wait({listening, reader}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
    assert listening in done, f"serve never listened: {logs}"
    _readers.add(reader)
    return process, listening.result(), logs


async def _slow_client(host: str, port: int, stop: asyncio.Event) -> int:
    """Open a connection, send request headers one byte every half second; reconnect when dropped."""
    dropped = 0
    head = b"POST /webhook HTTP/1.1\r\nHost: victim\r\n" + b"X-Padding: " + b"a" * 10_000
    while not stop.is_set():
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(0.2)
            continue
        try:
            for n in range(len(head)):
                if stop.is_set():
                    break
                writer.write(head[n : n + 1])
                await writer.drain()
                await asyncio.sleep(0.5)
        except OSError:
            dropped += 1
        finally:
            writer.close()
        await asyncio.sleep(0.2)
    return dropped


async def test_probes_stay_answerable_under_300_slow_connections(tmp_path: Path) -> None:
    process, url, logs = await _start(tmp_path)
    host, port = url.removeprefix("http://").rsplit(":", 1)
    stop = asyncio.Event()
    attackers = [asyncio.create_task(_slow_client(host, int(port), stop)) for _ in range(ATTACKERS)]
    try:
        await asyncio.sleep(3)  # every attacker connected (or tried to), past one header timeout
        answers: list[int | str] = []
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT_SECONDS),
            connector=aiohttp.TCPConnector(force_close=True),  # the kubelet opens a connection per probe
        ) as session:
            for n in range(20):
                path = "/healthz" if n % 2 else "/readyz"
                try:
                    async with session.get(url + path) as response:
                        answers.append(response.status)
                except (TimeoutError, aiohttp.ClientError) as e:
                    answers.append(type(e).__name__)
                await asyncio.sleep(0.25)
            webhook = {
                "version": "4",
                "groupKey": "{}:{}",
                "status": "firing",
                "receiver": "oom-responder",
                "alerts": [
                    {
                        "status": "firing",
                        "labels": {"alertname": "OOMKilled", "namespace": "shop", "pod": "api-1"},
                        "startsAt": "2024-05-01T10:00:00Z",
                    }
                ],
            }
            async with session.post(
                url + "/webhook",
                json=webhook,
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=aiohttp.ClientTimeout(total=5),
            ) as response:
                webhook_status = response.status
    finally:
        stop.set()
        dropped = sum(await asyncio.gather(*attackers))
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), timeout=60)
        await asyncio.gather(*_readers)
        _readers.clear()
    assert answers == [200] * 20, f"probe answers under attack: {answers}"
    assert webhook_status == 202
    assert dropped > 0, "the server never closed a slow connection"
    [lowered] = [record for record in logs if "lowered" in record.get("message", "")]
    assert lowered["lowered_to"] == OPEN_FILE_LIMIT - 64 - 128
    assert not [record for record in logs if "out of system resource" in record.get("message", "")]
