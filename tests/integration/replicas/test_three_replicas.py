"""Three responder processes against one API server: each mitigation exactly once, the budget held in total.

Aspects covered:
* three separate OS processes, each serving POST /webhook, all receiving the same OOMKilled alerts plus
  interleaved distinct ones: at most one raise per workload, no more raises in total than the global budget,
  and every occurrence accounted for (raised, or reported as blocked by the budget);
* Alertmanager repeating everything afterwards changes nothing (no duplicate);
* `kill -9` of one replica mid-storm, then a restart and Alertmanager's resend: every workload raised exactly
  once, none twice, none lost.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import math
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client as k8s

from responder import metrics as metrics_mod
from responder.kube import client, state
from responder.models import settings
from tests.integration.guardrails import support
from tests.kubeplane import incidents
from tests.kubeplane.plane import KubePlane

pytestmark = pytest.mark.integration

REPLICA = Path(__file__).with_name("replica.py")


class Process:
    """One replica process and where to reach it."""

    def __init__(self, index: int, config_file: Path, workdir: Path) -> None:
        self.index = index
        self.config_file = config_file
        self.workdir = workdir
        self.notices_file = workdir / f"notices-{index}.jsonl"
        self.popen: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self) -> None:
        port_file = self.workdir / f"port-{self.index}-{secrets.token_hex(2)}"
        log = (self.workdir / f"replica-{self.index}.log").open("ab")
        self.popen = subprocess.Popen(
            [sys.executable, str(REPLICA), str(self.config_file), str(port_file), str(self.notices_file)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        self._port_file = port_file

    async def wait_listening(self) -> None:
        async def probe() -> int | None:
            assert self.popen is not None
            if self.popen.poll() is not None:
                raise AssertionError(f"replica {self.index} exited: {self.log_tail()}")
            return int(self._port_file.read_text()) if self._port_file.exists() else None

        self.port = await incidents.wait_for(
            probe, timeout_seconds=60, what=f"replica {self.index} listening"
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self, sig: signal.Signals) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log_tail(self) -> str:
        path = self.workdir / f"replica-{self.index}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def notices(self) -> list[dict[str, Any]]:
        if not self.notices_file.exists():
            return []
        return [json.loads(line) for line in self.notices_file.read_text().splitlines() if line.strip()]


@pytest.fixture
def own_namespace(kube_plane: KubePlane) -> Iterator[str]:
    name = f"responder-{secrets.token_hex(3)}"
    kube_plane.create_namespace(name)
    try:
        yield name
    finally:
        kube_plane.delete_namespace(name)


@pytest.fixture
async def fleet(kube_plane: KubePlane, own_namespace: str, tmp_path: Path) -> AsyncIterator[Any]:
    """`await start(budget) -> [Process] * 3`; every process is stopped at the end, whatever happens."""
    processes: list[Process] = []

    async def start(budget: int) -> list[Process]:
        config = {
            "mode": "enforce",
            "kubernetes": {"kubeconfig": str(kube_plane.kubeconfig), "own_namespace": own_namespace},
            "guardrails": {
                "budget": {"mutations": budget, "window_seconds": 3600},
                "blast_radius": {"max_workloads": 1000},
            },
            "verification": {"timeout_seconds": 10, "poll_seconds": 0.5},
            "queue": {"workers": 8},
            "auth": {"mode": "none"},
        }
        config_file = tmp_path / "replica-config.json"
        config_file.write_text(json.dumps(config), encoding="utf-8")
        settings.Settings.model_validate(config)  # fail here, not in three processes
        for index in range(3):
            process = Process(index, config_file, tmp_path)
            process.start()
            processes.append(process)
        await asyncio.gather(*(process.wait_listening() for process in processes))
        return processes

    try:
        yield start
    finally:
        for process in processes:
            process.kill(signal.SIGTERM)


async def post(session: aiohttp.ClientSession, process: Process, body: dict[str, Any]) -> str:
    """POST like Alertmanager: "accepted" (2xx), or "retry" (5xx or no answer: Alertmanager resends)."""
    try:
        async with session.post(f"{process.url}/webhook", json=body) as response:
            if 200 <= response.status < 300:
                return "accepted"
            assert response.status >= 500, await response.text()
            return "retry"
    except aiohttp.ClientError:
        return "retry"


async def wait_idle(session: aiohttp.ClientSession, processes: list[Process]) -> None:
    """Until every live replica's queue is empty."""

    async def depth(process: Process) -> float:
        async with session.get(f"{process.url}/metrics") as response:
            text = await response.text()
        for line in text.splitlines():
            if line.startswith("oom_responder_queue_depth "):
                return float(line.split()[1])
        raise AssertionError("no queue depth metric")

    async def probe() -> bool | None:
        depths = [await depth(process) for process in processes if process.alive]
        return True if all(value == 0 for value in depths) else None

    await incidents.wait_for(probe, timeout_seconds=240, interval_seconds=0.5, what="every queue drained")


async def raises_per_workload(api: k8s.ApiClient, namespace: str, names: list[str]) -> dict[str, int]:
    counts = {}
    for name in names:
        entries = await support.ledger_of(api, namespace, name)
        counts[name] = sum(1 for entry in entries if entry.action is settings.Action.RAISE_MEMORY)
    return counts


async def remaining_tokens(kube_plane: KubePlane, own_namespace: str, budget: int) -> float:
    config = settings.Settings.model_validate(
        {
            "kubernetes": {"kubeconfig": str(kube_plane.kubeconfig), "own_namespace": own_namespace},
            "guardrails": {"budget": {"mutations": budget, "window_seconds": 3600}},
        }
    )
    kube = await client.Kube.connect(settings=config.kubernetes, metrics=metrics_mod.Metrics())
    try:
        stored = await state.StateStore(kube, namespace=own_namespace, settings=config).read()
    finally:
        await kube.close()
    assert stored.budget_tokens is not None
    return stored.budget_tokens


async def test_same_and_distinct_alerts_on_three_replicas_respect_one_budget(
    fleet: Any, kube_plane: KubePlane, kube_api: k8s.ApiClient, namespace: str, own_namespace: str
) -> None:
    budget = 8
    shared = [f"s{index}" for index in range(6)]
    distinct = [f"d{index}" for index in range(6)]
    pods = await support.stage_oom_killed(kube_api, namespace, shared + distinct)
    processes = await fleet(budget)
    now = datetime.datetime.now(datetime.UTC)

    def body(name: str) -> dict[str, Any]:
        return support.oom_payload([(namespace, pods[name]["metadata"]["name"])], starts_at=now)

    async with aiohttp.ClientSession() as session:
        posts = []
        for index in range(6):
            posts += [post(session, process, body(shared[index])) for process in processes]
            posts.append(post(session, processes[index % 3], body(distinct[index])))
        assert set(await asyncio.gather(*posts)) == {"accepted"}
        await wait_idle(session, processes)

        counts = await raises_per_workload(kube_api, namespace, shared + distinct)
        assert max(counts.values()) <= 1
        raised = sum(counts.values())
        assert 0 < raised <= budget
        tokens = await remaining_tokens(kube_plane, own_namespace, budget)
        assert raised + math.floor(tokens) <= budget
        # Nothing lost: every workload not raised was reported blocked by the budget by some replica.
        blocked = {
            notice["target"]
            for process in processes
            for notice in process.notices()
            if notice["guardrail"] == "budget"
        }
        for name, count in counts.items():
            assert count == 1 or f"{namespace}/Deployment/{name}" in blocked, name

        # Alertmanager repeats every alert to every replica: still at most one raise each, budget still held.
        repeats = [post(session, process, body(name)) for name in shared + distinct for process in processes]
        assert set(await asyncio.gather(*repeats)) == {"accepted"}
        await wait_idle(session, processes)
    again = await raises_per_workload(kube_api, namespace, shared + distinct)
    assert max(again.values()) <= 1
    assert sum(again.values()) <= budget


async def test_kill_9_mid_storm_and_restart_leaves_no_duplicate_and_loses_nothing(
    fleet: Any, kube_api: k8s.ApiClient, namespace: str
) -> None:
    first = [f"a{index}" for index in range(6)]
    second = [f"b{index}" for index in range(6)]
    pods = await support.stage_oom_killed(kube_api, namespace, first + second)
    processes = await fleet(100)
    now = datetime.datetime.now(datetime.UTC)

    def body(names: list[str]) -> dict[str, Any]:
        return support.oom_payload(
            [(namespace, pods[name]["metadata"]["name"]) for name in names], starts_at=now
        )

    async with aiohttp.ClientSession() as session:
        statuses = await asyncio.gather(*(post(session, process, body(first)) for process in processes))
        assert statuses == ["accepted"] * 3
        # Crash one replica while the storm is being worked on.
        processes[0].kill(signal.SIGKILL)
        statuses = await asyncio.gather(*(post(session, process, body(second)) for process in processes))
        # The dead one does not answer: Alertmanager keeps it for a retry.
        assert statuses == ["retry", "accepted", "accepted"]
        processes[0].start()
        await processes[0].wait_listening()
        # Alertmanager resends what it could not deliver, and repeats the rest.
        statuses = await asyncio.gather(
            *(post(session, process, body(first + second)) for process in processes)
        )
        assert statuses == ["accepted"] * 3
        await wait_idle(session, processes)

    counts = await raises_per_workload(kube_api, namespace, first + second)
    assert counts == {name: 1 for name in first + second}
    done = [
        notice["target"]
        for process in processes
        for notice in process.notices()
        if notice["kind"] == "action" and notice["outcome"] == "done"
    ]
    assert len(done) == len(set(done))
