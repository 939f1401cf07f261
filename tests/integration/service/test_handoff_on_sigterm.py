"""A 202 survives SIGTERM: two `oom-responder serve` processes in enforce mode against the real control plane.

Covers: replica A acknowledges ten OOMKilled alerts (ten Deployments) in one webhook and is sent SIGTERM at
once, as in a rolling update during a storm; it drains for `server.shutdown_timeout_seconds` and hands the
rest, through a round-robin stand-in for the Service that also routes to A itself, to replica B. Every one of
the ten Deployments then has its memory limit raised exactly once, with exactly one ledger entry for its
occurrence, written by A or by B; A logs how many it handed off, counts none lost, and exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from kubernetes_asyncio import client

from tests.kubeplane import incidents
from tests.kubeplane.plane import KubePlane

pytestmark = pytest.mark.integration

TOKEN = "handoff-token"
N = 10
DEADLINE_SECONDS = 120.0


class Replica:
    """A running `serve` whose JSON log lines are read as they come."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.logs: list[dict[str, Any]] = []
        self.url = ""
        self._listening = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stderr is not None
        while line := await self.process.stderr.readline():
            try:
                record = json.loads(line)
            except ValueError:
                record = {"message": line.decode(errors="replace").rstrip()}
            self.logs.append(record)
            if record.get("message") == "listening":
                self.url = f"http://{record['addresses'][0]}"
                self._listening.set()

    async def wait_ready(self, session: aiohttp.ClientSession) -> None:
        await asyncio.wait_for(self._listening.wait(), timeout=DEADLINE_SECONDS)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE_SECONDS
        while loop.time() < deadline:
            async with session.get(f"{self.url}/readyz") as answer:
                if answer.status == 200:
                    return
            await asyncio.sleep(0.2)
        raise AssertionError(f"never ready: {self.logs[-5:]}")

    async def stop(self) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.process.wait(), timeout=DEADLINE_SECONDS)
        await self._reader
        return code

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


async def _start(tmp_path: Path, name: str, config: dict[str, Any]) -> Replica:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    process = await asyncio.create_subprocess_exec(
        "oom-responder",
        "serve",
        "--config",
        str(path),
        env={**os.environ, "TEST_WEBHOOK_TOKEN": TOKEN},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    return Replica(process)


@contextlib.asynccontextmanager
async def _service(backends: list[str]) -> AsyncIterator[str]:
    """Round-robin over the replicas, the one shutting down included, as a Service may for a moment."""
    turn = 0

    async def forward(request: web.Request) -> web.Response:
        nonlocal turn
        backend = backends[turn % len(backends)]
        turn += 1
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.post(backend, data=await request.read(), headers=request.headers) as answer,
            ):
                return web.Response(status=answer.status, body=await answer.read())
        except aiohttp.ClientError:
            return web.Response(status=503, text="backend gone")

    app = web.Application()
    app.router.add_post("/webhook", forward)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    [address] = runner.addresses
    try:
        yield f"http://127.0.0.1:{address[1]}/webhook"
    finally:
        await runner.cleanup()


def _payload(namespace: str, pods: list[str]) -> dict[str, Any]:
    now = datetime.datetime.now(datetime.UTC).isoformat()
    alerts = []
    for n, pod in enumerate(pods):
        labels = {"alertname": "OOMKilled", "namespace": namespace, "pod": pod, "container": "app"}
        alerts.append(
            {
                "status": "firing",
                "labels": labels,
                "annotations": {},
                "startsAt": now,
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.invalid/graph",
                "fingerprint": f"{n:016x}",
            }
        )
    return {
        "version": "4",
        "groupKey": '{}:{alertname="OOMKilled"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "oom-responder",
        "groupLabels": {"alertname": "OOMKilled"},
        "commonLabels": {"alertname": "OOMKilled"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.invalid",
        "alerts": alerts,
    }


async def test_alerts_acknowledged_before_sigterm_are_each_handled_exactly_once_by_someone(
    kube_plane: KubePlane, namespace: str, kube_api: client.ApiClient, tmp_path: Path
) -> None:
    pods = []
    for n in range(N):
        await incidents.create_deployment(kube_api, namespace, f"w{n}", replicas=1)
    for n in range(N):
        [pod] = await incidents.wait_for_running_pods(kube_api, namespace, selector=f"app=w{n}", count=1)
        await incidents.mark_oom_killed(kube_api, pod)
        pods.append(pod["metadata"]["name"])

    backends: list[str] = []

    def config(identity: str, **server: Any) -> dict[str, Any]:
        return {
            "mode": "enforce",
            "identity": identity,
            "server": {"host": "127.0.0.1", "port": 0, **server},
            "auth": {"mode": "bearer", "bearer_token_env": "TEST_WEBHOOK_TOKEN"},
            "queue": {"workers": 1},
            "kubernetes": {"kubeconfig": str(kube_plane.kubeconfig), "own_namespace": namespace},
            "guardrails": {
                "act_in_own_namespace": True,
                "blast_radius": {"max_workloads": 50},
                "budget": {"mutations": 100},
            },
            "verification": {"timeout_seconds": 30, "poll_seconds": 0.5},
        }

    async with _service(backends) as service_url, aiohttp.ClientSession() as session:
        a = await _start(
            tmp_path, "a", config("replica-a", shutdown_timeout_seconds=0.5, handoff_url=service_url)
        )
        b = await _start(tmp_path, "b", config("replica-b"))
        try:
            await a.wait_ready(session)
            await b.wait_ready(session)
            backends += [f"{a.url}/webhook", f"{b.url}/webhook"]
            async with session.post(
                f"{a.url}/webhook",
                json=_payload(namespace, pods),
                headers={"Authorization": f"Bearer {TOKEN}"},
            ) as answer:
                assert answer.status == 202, await answer.text()
                assert (await answer.json())["accepted"] == N
            assert await a.stop() == 0

            apps = client.AppsV1Api(kube_api)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + DEADLINE_SECONDS
            ledgers: dict[str, list[dict[str, Any]]] = {}
            while loop.time() < deadline and len(ledgers) < N:
                for n in range(N):
                    deployment = await apps.read_namespaced_deployment(f"w{n}", namespace)
                    raw = (deployment.metadata.annotations or {}).get("oom-responder.io/ledger")
                    if raw:
                        ledgers[f"w{n}"] = json.loads(raw)
                await asyncio.sleep(0.5)
            assert len(ledgers) == N, f"handled: {sorted(ledgers)}; A's log: {a.logs[-10:]}"
            # Every entry is in; give a second handling, were there one, the time to show up.
            await asyncio.sleep(2)
            by: set[str] = set()
            for n in range(N):
                deployment = await apps.read_namespaced_deployment(f"w{n}", namespace)
                ledger = json.loads(deployment.metadata.annotations["oom-responder.io/ledger"])
                raises = [entry for entry in ledger if entry["action"] == "raise_memory"]
                assert len(raises) == 1, (f"w{n}", ledger)
                assert raises[0]["occurrence"].startswith(f"{n:016x}@")
                assert deployment.spec.template.spec.containers[0].resources.limits["memory"] == "228Mi"
                by.add(raises[0]["by"])
            [handed] = [
                r for r in a.logs if r.get("message", "").startswith("alerts left at shutdown handed off")
            ]
            assert handed["handed_off"] >= 1
            assert "replica-b" in by
            assert not [r for r in a.logs if "lost" in r.get("message", "")]
            assert await b.stop() == 0
        finally:
            await a.kill()
            await b.kill()
