"""`oom-responder serve` as a separate process, in enforce mode, against the real control plane.

Covers: the command wires the whole pipeline (webhook → plan → guard → write → verify → notify); /readyz
turns ready once the API server answers; an OOMKilled alert raises the Deployment's memory limit while Slack
hangs (a Slack outage never delays a mitigation) and the message is delivered once Slack recovers; the
service's own metrics count the action; SIGTERM drains and exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import os
import signal
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import test_utils
from kubernetes_asyncio import client

from tests.kubeplane import incidents
from tests.kubeplane.plane import KubePlane
from tests.slackstub import server as slack_server

pytestmark = pytest.mark.integration

TOKEN = "webhook-token"
SLACK_TOKEN = "xoxb-serve-test"
CHANNEL = "C0SERVE"
DEADLINE_SECONDS = 90.0


class Service:
    """A running `oom-responder serve` whose JSON log lines are read as they come (the pipe never fills)."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.logs: list[dict[str, Any]] = []
        self.url = ""
        self._reader = asyncio.create_task(self._read())
        self._listening = asyncio.Event()

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

    async def wait_listening(self) -> None:
        waiter = asyncio.ensure_future(self._listening.wait())
        done, _ = await asyncio.wait(
            {waiter, self._reader}, timeout=DEADLINE_SECONDS, return_when=asyncio.FIRST_COMPLETED
        )
        waiter.cancel()
        assert self._listening.is_set(), f"the service never listened; logs: {self.logs}"
        assert done

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


@pytest.fixture
async def slack(
    aiohttp_server: Callable[..., Coroutine[Any, Any, test_utils.TestServer]],
) -> AsyncIterator[tuple[slack_server.SlackStub, str]]:
    stub = slack_server.SlackStub(tokens=(SLACK_TOKEN,), channels=(CHANNEL,))
    served = await aiohttp_server(stub.app)
    yield stub, str(served.make_url("/api/"))
    stub.release()


async def _until(probe: Callable[[], Coroutine[Any, Any, Any]], what: str) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_SECONDS
    while loop.time() < deadline:
        value = await probe()
        if value:
            return value
        await asyncio.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what}")


def _oom_payload(namespace: str, pod: str) -> dict[str, Any]:
    labels = {
        "alertname": "OOMKilled",
        "namespace": namespace,
        "pod": pod,
        "container": "app",
        "severity": "critical",
    }
    return {
        "version": "4",
        "groupKey": '{}:{alertname="OOMKilled"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "oom-responder",
        "groupLabels": {"alertname": "OOMKilled"},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.invalid",
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": {"summary": f"{pod} was OOMKilled"},
                "startsAt": datetime.datetime.now(datetime.UTC).isoformat(),
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.invalid/graph",
                "fingerprint": "0123456789abcdef",
            }
        ],
    }


def _memory_limit(deployment: client.V1Deployment) -> str:
    limits: dict[str, str] = deployment.spec.template.spec.containers[0].resources.limits
    return limits["memory"]


async def test_serve_raises_memory_during_a_slack_outage_and_reports_after_it(
    kube_plane: KubePlane,
    namespace: str,
    kube_api: client.ApiClient,
    slack: tuple[slack_server.SlackStub, str],
    tmp_path: Path,
) -> None:
    stub, api_url = slack
    apps = client.AppsV1Api(kube_api)
    await incidents.create_deployment(kube_api, namespace, "shop", replicas=1)
    [pod] = await incidents.wait_for_running_pods(kube_api, namespace, selector="app=shop", count=1)
    await incidents.mark_oom_killed(kube_api, pod)

    config = {
        "mode": "enforce",
        "identity": "serve-under-test",
        "server": {"host": "127.0.0.1", "port": 0, "shutdown_timeout_seconds": 10},
        "auth": {"mode": "bearer", "bearer_token_env": "TEST_WEBHOOK_TOKEN"},
        "kubernetes": {"kubeconfig": str(kube_plane.kubeconfig), "own_namespace": namespace},
        "guardrails": {"act_in_own_namespace": True},
        "verification": {"timeout_seconds": 60, "poll_seconds": 0.5},
        "notifiers": {
            "slack": {
                "enabled": True,
                "token_env": "TEST_SLACK_TOKEN",
                "channel": CHANNEL,
                "api_url": api_url,
                "timeout_seconds": 30,
            }
        },
    }
    config_path = tmp_path / "responder.yaml"
    config_path.write_text(yaml.safe_dump(config))
    # Slack hangs on its first request: the mitigation must not wait for it.
    stub.hang(times=1)

    process = await asyncio.create_subprocess_exec(
        "oom-responder",
        "serve",
        "--config",
        str(config_path),
        env={**os.environ, "TEST_WEBHOOK_TOKEN": TOKEN, "TEST_SLACK_TOKEN": SLACK_TOKEN},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    service = Service(process)
    try:
        await service.wait_listening()
        async with aiohttp.ClientSession() as session:

            async def ready() -> bool:
                async with session.get(f"{service.url}/readyz") as answer:
                    return answer.status == 200

            await _until(ready, "/readyz to report the cluster reachable")
            async with session.post(
                f"{service.url}/webhook",
                json=_oom_payload(namespace, pod["metadata"]["name"]),
                headers={"Authorization": f"Bearer {TOKEN}"},
            ) as answer:
                assert answer.status == 202, await answer.text()
                assert (await answer.json())["accepted"] == 1

            async def raised() -> client.V1Deployment | None:
                deployment = await apps.read_namespaced_deployment("shop", namespace)
                return deployment if _memory_limit(deployment) != "128Mi" else None

            deployment = await _until(raised, "the memory limit to be raised")
            assert _memory_limit(deployment) == "228Mi"
            ledger = json.loads(deployment.metadata.annotations["oom-responder.io/ledger"])
            assert [(e["action"], e["from"], e["to"], e["by"]) for e in ledger] == [
                ("raise_memory", "128Mi", "228Mi", "serve-under-test")
            ]
            # The write happened while Slack was still hanging on the first message.
            assert stub.requests >= 1
            assert stub.posted == []
            stub.release()

            async def delivered() -> bool:
                return any("shop" in json.dumps(p.blocks) for p in stub.posted)

            await _until(delivered, "the Slack message after the outage")
            assert stub.rejections == []

            async with session.get(f"{service.url}/metrics") as answer:
                exposition = await answer.text()
            assert (
                'oom_responder_actions_total{action="raise_memory",playbook="oom-raise-memory",result="done"} 1.0'
                in exposition
            )
        assert await service.stop() == 0
        assert any(record.get("message") == "stopped" for record in service.logs)
    finally:
        await service.kill()
