"""`oom-responder serve`, run as the README says, as a separate process.

Covers: with the example config and a token in the environment it starts, answers a webhook with 202, explains
on /readyz that it plans from labels only, logs one JSON object per webhook and one per decision, and exits 0
on SIGTERM after draining; without the token it refuses to start (exit 2) naming what to set.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any

import aiohttp

from tests.unit import payloads

ROOT = Path(__file__).resolve().parents[3]


async def _start(env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        "oom-responder",
        "serve",
        "--config",
        "config/responder.yaml",
        "--port",
        "0",
        "--host",
        "127.0.0.1",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _read_logs_until(
    process: asyncio.subprocess.Process, message: str, logs: list[dict[str, Any]]
) -> dict[str, Any]:
    assert process.stderr is not None
    while True:
        line = await asyncio.wait_for(process.stderr.readline(), timeout=60)
        assert line, f"the service exited before logging {message!r}; logs: {logs}"
        record: dict[str, Any] = json.loads(line)
        logs.append(record)
        if record["message"] == message:
            return record


async def test_serves_the_example_config_and_answers_a_webhook() -> None:
    env = {**os.environ, "OOM_RESPONDER_WEBHOOK_TOKEN": "dev-token"}
    process = await _start(env)
    logs: list[dict[str, Any]] = []
    try:
        listening = await _read_logs_until(process, "listening", logs)
        [address] = listening["addresses"]
        url = f"http://{address}"
        async with aiohttp.ClientSession() as session:
            body = payloads.payload(payloads.alert("OOMKilled", workload="api", workload_kind="Deployment"))
            async with session.post(
                f"{url}/webhook", json=body, headers={"Authorization": "Bearer dev-token"}
            ) as response:
                assert response.status == 202
                assert await response.json() == {"accepted": 1, "duplicates": 0, "resolved": 0, "ignored": 0}
            async with session.post(f"{url}/webhook", json=body) as response:
                assert response.status == 401
            async with session.get(f"{url}/readyz") as response:
                ready = await response.json()
                assert response.status == 200
                assert ready["cluster"].startswith("unavailable: no kubeconfig and not in a cluster")
                assert "planning from labels only" in ready["cluster"]
                assert ready["mode"] == "dry-run"
        decision = await _read_logs_until(process, "would act (planned from labels only; no cluster)", logs)
        assert decision["occurrence_id"] == "a1b2c3d4e5f60718@2024-05-01T10:00:00+00:00"
        assert decision["target"] == "shop/Deployment/api"
        assert decision["action"] == "raise_memory"
        assert decision["decision"] == "would_do"
        # The receiver logs the webhook once, with its counts; the decision above is the only per-alert line.
        [received] = [record for record in logs if record["message"] == "webhook accepted"]
        assert (received["accepted"], received["duplicates"], received["ignored"]) == (1, 0, 0)
        assert not any(record["message"] == "alert queued" for record in logs)
        process.send_signal(signal.SIGTERM)
        await _read_logs_until(process, "stopped", logs)
        assert await asyncio.wait_for(process.wait(), timeout=60) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_refuses_to_start_without_the_webhook_token() -> None:
    env = {key: value for key, value in os.environ.items() if key != "OOM_RESPONDER_WEBHOOK_TOKEN"}
    process = await _start(env)
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 2
    assert "OOM_RESPONDER_WEBHOOK_TOKEN" in stderr.decode()
