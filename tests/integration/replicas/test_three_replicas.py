"""Three `oom-responder serve` processes against one API server: each mitigation exactly once, one budget.

Aspects covered:
* three separate `oom-responder serve` OS processes (YAML config, bearer-token auth, identity from
  $POD_NAME), each serving POST /webhook, all receiving the same OOMKilled alerts plus interleaved distinct
  ones: at most one raise per workload, no more raises in total than the global budget, and every occurrence
  accounted for (raised, or reported blocked by the budget through a `notifiers.webhooks` notifier);
* Alertmanager repeating everything afterwards changes nothing (no duplicate);
* notices go out through the generic JSON webhook to a collector in the test process, digests included: after
  a SIGTERM every notice a replica logged was delivered, and nothing else was;
* `kill -9` of one replica mid-storm, then a restart and Alertmanager's resend: every workload raised exactly
  once, none twice, none lost; no "done" notice twice; every raise by a replica that was not killed was
  reported by it (the killed one's outbox dies with it, so its notices are only checked to be real).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime
import json
import math
import os
import secrets
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import test_utils, web
from kubernetes_asyncio import client as k8s

from responder import metrics as metrics_mod
from responder.kube import client, state
from responder.models import settings
from tests.integration.guardrails import support
from tests.kubeplane import incidents
from tests.kubeplane.plane import KubePlane

pytestmark = pytest.mark.integration

TOKEN = "replica-webhook-token"
TOKEN_ENV = "TEST_REPLICA_WEBHOOK_TOKEN"
NOTICES_URL_ENV = "TEST_REPLICA_NOTICES_URL"
SHUTDOWN_SECONDS = 30

# What identifies one notice both in the service's log line and in the webhook body.
NoticeKey = tuple[str, str, str | None, str | None, str | None]


class Collector:
    """The webhook notifier's receiver: keeps every notice POSTed, by the replica named in the path."""

    def __init__(self) -> None:
        self.posts: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
        self.problems: list[str] = []
        self.app = web.Application()
        self.app.router.add_post("/notices/{replica}", self._receive)

    async def _receive(self, request: web.Request) -> web.Response:
        replica = request.match_info["replica"]
        try:
            body = await request.json()
        except ValueError:
            self.problems.append(f"{replica}: not JSON")
            return web.json_response({"error": "not JSON"}, status=400)
        if (
            not isinstance(body, dict)
            or body.get("version") != "1"
            or not isinstance(body.get("digest"), bool)
            or not isinstance(body.get("notices"), list)
            or not body["notices"]
        ):
            self.problems.append(f"{replica}: unexpected body {body!r}"[:500])
            return web.json_response({"error": "unexpected body"}, status=400)
        self.posts[replica].append(body)
        return web.json_response({"ok": True})

    def notices(self, replica: str) -> list[dict[str, Any]]:
        """Every notice delivered by `replica`, digests unpacked, in arrival order."""
        return [notice for body in self.posts[replica] for notice in body["notices"]]

    def all_notices(self) -> list[dict[str, Any]]:
        return [notice for replica in list(self.posts) for notice in self.notices(replica)]


def target_key(notice: dict[str, Any]) -> str | None:
    """The webhook body's target as `Target.key` ("namespace/Kind/name")."""
    target = notice["target"]
    return None if target is None else f"{target['namespace']}/{target['kind']}/{target['name']}"


def delivered_key(notice: dict[str, Any]) -> NoticeKey:
    return (notice["kind"], notice["incident"], target_key(notice), notice["outcome"], notice["guardrail"])


def logged_key(record: dict[str, Any]) -> NoticeKey:
    return (
        record["notice"],
        record["incident"],
        record.get("target"),
        record.get("outcome"),
        record.get("guardrail"),
    )


class Replica:
    """One `oom-responder serve` process; each start is a new incarnation with its own identity and log."""

    def __init__(self, index: int, *, config_file: Path, workdir: Path, collector_url: str) -> None:
        self.index = index
        self.config_file = config_file
        self.workdir = workdir
        self.collector_url = collector_url
        self.incarnation = 0
        self.process: asyncio.subprocess.Process | None = None
        self.url = ""

    @property
    def identity(self) -> str:
        """This incarnation's name: in ledgers (`by`) and in the collector's path."""
        return f"replica-{self.index}-{self.incarnation}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.identity}.log"

    async def start(self) -> None:
        self.incarnation += 1
        self.url = ""
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                "oom-responder",
                "serve",
                "--config",
                str(self.config_file),
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env={
                    **os.environ,
                    "PYTHONUNBUFFERED": "1",
                    "POD_NAME": self.identity,
                    TOKEN_ENV: TOKEN,
                    NOTICES_URL_ENV: f"{self.collector_url}/notices/{self.identity}",
                },
            )

    def log_records(self, identity: str | None = None) -> list[dict[str, Any]]:
        path = self.workdir / f"{identity}.log" if identity else self.log_path
        records = []
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict):
                    records.append(record)
        return records

    def logged_notices(self, identity: str) -> list[NoticeKey]:
        """Every notice the incarnation handed to its notifiers (each is logged as it is queued)."""
        return [logged_key(record) for record in self.log_records(identity) if "notice" in record]

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""

    async def wait_ready(self, session: aiohttp.ClientSession) -> None:
        """Until the process logged where it listens and its /readyz says the API server answers."""

        async def listening() -> str | None:
            self._check_alive()
            for record in self.log_records():
                if record.get("message") == "listening":
                    return f"http://{record['addresses'][0]}"
            return None

        self.url = await incidents.wait_for(
            listening, timeout_seconds=90, interval_seconds=0.2, what=f"{self.identity} listening"
        )

        async def ready() -> bool | None:
            self._check_alive()
            async with session.get(f"{self.url}/readyz") as response:
                return True if response.status == 200 else None

        await incidents.wait_for(ready, timeout_seconds=90, what=f"{self.identity} ready")

    def _check_alive(self) -> None:
        if not self.alive:
            raise AssertionError(f"{self.identity} exited: {self.log_tail()}")

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def kill_9(self) -> None:
        assert self.process is not None
        self.process.kill()
        await self.process.wait()

    async def stop(self) -> int:
        """SIGTERM and wait (asynchronously: the collector in this loop must answer the final deliveries)."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), timeout=SHUTDOWN_SECONDS + 30)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
            raise AssertionError(f"{self.identity} did not stop on SIGTERM: {self.log_tail()}") from None


@pytest.fixture
def own_namespace(kube_plane: KubePlane) -> Iterator[str]:
    name = f"responder-{secrets.token_hex(3)}"
    kube_plane.create_namespace(name)
    try:
        yield name
    finally:
        kube_plane.delete_namespace(name)


@pytest.fixture
async def collector(
    aiohttp_server: Callable[..., Coroutine[Any, Any, test_utils.TestServer]],
) -> AsyncIterator[tuple[Collector, str]]:
    receiver = Collector()
    served = await aiohttp_server(receiver.app)
    yield receiver, str(served.make_url("")).rstrip("/")


class Fleet:
    """`await fleet.start(budget) -> [Replica] * 3`, all ready; `fleet.received` is what they notified."""

    def __init__(self, start: Callable[[int], Awaitable[list[Replica]]], received: Collector) -> None:
        self.start = start
        self.received = received


@pytest.fixture
async def fleet(
    kube_plane: KubePlane, own_namespace: str, tmp_path: Path, collector: tuple[Collector, str]
) -> AsyncIterator[Fleet]:
    """The three replicas, started on demand; every process is stopped at the end, whatever happens."""
    replicas: list[Replica] = []
    received, collector_url = collector

    async def start(budget: int) -> list[Replica]:
        config = {
            "mode": "enforce",
            "server": {"shutdown_timeout_seconds": SHUTDOWN_SECONDS},
            "auth": {"mode": "bearer", "bearer_token_env": TOKEN_ENV},
            "kubernetes": {"kubeconfig": str(kube_plane.kubeconfig), "own_namespace": own_namespace},
            "guardrails": {
                "budget": {"mutations": budget, "window_seconds": 3600},
                "blast_radius": {"max_workloads": 1000},
            },
            "verification": {"timeout_seconds": 10, "poll_seconds": 0.5},
            "queue": {"workers": 8},
            "notifiers": {
                "webhooks": [
                    {
                        "name": "collector",
                        "url_env": NOTICES_URL_ENV,
                        # One POST per notice, unpaced: the collector must see each notice on its own.
                        "digest_after": 1000,
                        "messages_per_second": 1000,
                        "outbox_size": 1000,
                        # Generous on a loaded machine: a retried POST after a timeout could arrive twice.
                        "timeout_seconds": 30,
                    }
                ]
            },
        }
        settings.Settings.model_validate(config)  # fail here, not in three processes
        config_file = tmp_path / "responder.yaml"
        config_file.write_text(yaml.safe_dump(config), encoding="utf-8")
        for index in range(3):
            replica = Replica(index, config_file=config_file, workdir=tmp_path, collector_url=collector_url)
            replicas.append(replica)
            await replica.start()
        async with aiohttp.ClientSession() as session:
            await asyncio.gather(*(replica.wait_ready(session) for replica in replicas))
        return replicas

    try:
        yield Fleet(start, received)
    finally:
        for replica in replicas:
            if replica.alive:
                with contextlib.suppress(AssertionError):
                    await replica.stop()


async def post(session: aiohttp.ClientSession, replica: Replica, body: dict[str, Any]) -> str:
    """POST like Alertmanager: "accepted" (2xx), or "retry" (5xx or no answer: Alertmanager resends)."""
    try:
        async with session.post(
            f"{replica.url}/webhook", json=body, headers={"Authorization": f"Bearer {TOKEN}"}
        ) as response:
            if 200 <= response.status < 300:
                return "accepted"
            assert response.status >= 500, await response.text()
            return "retry"
    except aiohttp.ClientError:
        return "retry"


async def wait_idle(session: aiohttp.ClientSession, replicas: list[Replica]) -> None:
    """Until every live replica's queue is empty."""

    async def depth(replica: Replica) -> float:
        async with session.get(f"{replica.url}/metrics") as response:
            text = await response.text()
        for line in text.splitlines():
            if line.startswith("oom_responder_queue_depth "):
                return float(line.split()[1])
        raise AssertionError("no queue depth metric")

    async def probe() -> bool | None:
        depths = [await depth(replica) for replica in replicas if replica.alive]
        return True if all(value == 0 for value in depths) else None

    await incidents.wait_for(probe, timeout_seconds=240, interval_seconds=0.5, what="every queue drained")


async def stop_all(replicas: list[Replica]) -> None:
    """SIGTERM every live replica: each drains its queue and delivers its outbox before exiting 0."""
    codes = await asyncio.gather(*(replica.stop() for replica in replicas if replica.alive))
    assert codes == [0] * len(codes), [replica.log_tail() for replica in replicas]


async def raises_per_workload(api: k8s.ApiClient, namespace: str, names: list[str]) -> dict[str, int]:
    counts = {}
    for name in names:
        entries = await support.ledger_of(api, namespace, name)
        counts[name] = sum(1 for entry in entries if entry.action is settings.Action.RAISE_MEMORY)
    return counts


async def raisers(api: k8s.ApiClient, namespace: str, names: list[str]) -> dict[str, list[str]]:
    """Per workload, the identities that wrote a raise into its ledger."""
    result = {}
    for name in names:
        entries = await support.ledger_of(api, namespace, name)
        result[name] = [entry.by for entry in entries if entry.action is settings.Action.RAISE_MEMORY]
    return result


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
    fleet: Fleet, kube_plane: KubePlane, kube_api: k8s.ApiClient, namespace: str, own_namespace: str
) -> None:
    received = fleet.received
    budget = 8
    shared = [f"s{index}" for index in range(6)]
    distinct = [f"d{index}" for index in range(6)]
    pods = await support.stage_oom_killed(kube_api, namespace, shared + distinct)
    replicas = await fleet.start(budget)
    now = datetime.datetime.now(datetime.UTC)

    def body(name: str) -> dict[str, Any]:
        return support.oom_payload([(namespace, pods[name]["metadata"]["name"])], starts_at=now)

    def blocked_by_budget() -> set[str | None]:
        return {target_key(notice) for notice in received.all_notices() if notice["guardrail"] == "budget"}

    async with aiohttp.ClientSession() as session:
        posts = []
        for index in range(6):
            posts += [post(session, replica, body(shared[index])) for replica in replicas]
            posts.append(post(session, replicas[index % 3], body(distinct[index])))
        assert set(await asyncio.gather(*posts)) == {"accepted"}
        await wait_idle(session, replicas)

        counts = await raises_per_workload(kube_api, namespace, shared + distinct)
        assert max(counts.values()) <= 1
        raised = sum(counts.values())
        assert 0 < raised <= budget
        tokens = await remaining_tokens(kube_plane, own_namespace, budget)
        assert raised + math.floor(tokens) <= budget
        # Nothing lost: every workload not raised was reported blocked by the budget by some replica. The
        # report travels through each replica's outbox after its queue is empty, so it is waited for.
        unraised = {f"{namespace}/Deployment/{name}" for name, count in counts.items() if count == 0}

        async def all_reported() -> bool | None:
            return True if unraised <= blocked_by_budget() else None

        with contextlib.suppress(TimeoutError):
            await incidents.wait_for(all_reported, timeout_seconds=120, what="budget refusals delivered")
        blocked = blocked_by_budget()
        for name, count in counts.items():
            assert count == 1 or f"{namespace}/Deployment/{name}" in blocked, name

        # Alertmanager repeats every alert to every replica: still at most one raise each, budget still held.
        repeats = [post(session, replica, body(name)) for name in shared + distinct for replica in replicas]
        assert set(await asyncio.gather(*repeats)) == {"accepted"}
        await wait_idle(session, replicas)
    again = await raises_per_workload(kube_api, namespace, shared + distinct)
    assert max(again.values()) <= 1
    assert sum(again.values()) <= budget

    # A SIGTERM delivers what is still in the outbox: each replica's collector record is exactly what it logged.
    await stop_all(replicas)
    assert received.problems == []
    for replica in replicas:
        logged = replica.logged_notices(replica.identity)
        assert logged, replica.identity
        delivered = [delivered_key(notice) for notice in received.notices(replica.identity)]
        assert collections.Counter(delivered) == collections.Counter(logged), replica.identity


async def test_kill_9_mid_storm_and_restart_leaves_no_duplicate_and_loses_nothing(
    fleet: Fleet, kube_api: k8s.ApiClient, namespace: str
) -> None:
    received = fleet.received
    first = [f"a{index}" for index in range(6)]
    second = [f"b{index}" for index in range(6)]
    pods = await support.stage_oom_killed(kube_api, namespace, first + second)
    replicas = await fleet.start(100)
    now = datetime.datetime.now(datetime.UTC)

    def body(names: list[str]) -> dict[str, Any]:
        return support.oom_payload(
            [(namespace, pods[name]["metadata"]["name"]) for name in names], starts_at=now
        )

    async with aiohttp.ClientSession() as session:
        statuses = await asyncio.gather(*(post(session, replica, body(first)) for replica in replicas))
        assert statuses == ["accepted"] * 3
        # Crash one replica while the storm is being worked on.
        killed = replicas[0].identity
        await replicas[0].kill_9()
        statuses = await asyncio.gather(*(post(session, replica, body(second)) for replica in replicas))
        # The dead one does not answer: Alertmanager keeps it for a retry.
        assert statuses == ["retry", "accepted", "accepted"]
        await replicas[0].start()
        await replicas[0].wait_ready(session)
        # Alertmanager resends what it could not deliver, and repeats the rest.
        statuses = await asyncio.gather(
            *(post(session, replica, body(first + second)) for replica in replicas)
        )
        assert statuses == ["accepted"] * 3
        await wait_idle(session, replicas)

    counts = await raises_per_workload(kube_api, namespace, first + second)
    assert counts == {name: 1 for name in first + second}

    await stop_all(replicas)
    assert received.problems == []
    done = [
        target_key(notice)
        for notice in received.all_notices()
        if notice["kind"] == "action" and notice["outcome"] == "done"
    ]
    assert len(done) == len(set(done))
    survivors = [replica.identity for replica in replicas]
    # The killed process's outbox died with it: what it did deliver is only checked to be what it logged.
    assert set(map(delivered_key, received.notices(killed))) <= set(replicas[0].logged_notices(killed))
    # Every other incarnation was stopped with SIGTERM and so delivered every notice it logged...
    for identity, replica in zip(survivors, replicas, strict=True):
        delivered = [delivered_key(notice) for notice in received.notices(identity)]
        assert collections.Counter(delivered) == collections.Counter(replica.logged_notices(identity)), (
            identity
        )
    # ...including the "done" of each raise it wrote: no raise by a survivor went unreported.
    for name, by in (await raisers(kube_api, namespace, first + second)).items():
        assert len(by) == 1, (name, by)
        if by[0] != killed:
            assert by[0] in survivors, (name, by)
            reported = {
                target_key(notice)
                for notice in received.notices(by[0])
                if notice["kind"] == "action" and notice["outcome"] == "done"
            }
            assert f"{namespace}/Deployment/{name}" in reported, (name, by)
