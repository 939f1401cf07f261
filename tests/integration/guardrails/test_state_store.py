"""The cluster-wide state object on a real API server: compare-and-swap under concurrent writers.

Aspects covered:
* a missing object is created by the first writer, also when several race to create it;
* concurrent tasks, several API clients and separate OS processes racing on `reserve` never spend more tokens
  than the budget holds, and every loser is told it was the budget;
* tasks of one process never lose a compare-and-swap to each other: each update starts from the state the
  process last wrote (no re-read), and the reservations waiting for a turn are committed together in one
  write (twenty at once cost a few writes, each caller told its own result); another client's write in
  between costs one 409 and a re-read;
* a decision that writes nothing is never made on a remembered state alone (another client's resume counts);
* 50 workloads alerting at once, from several processes, with a blast radius of 10: the breaker opens and
  exactly one caller is told so; after the quiet period exactly one caller is told it closed;
* `oom-responder pause` (a separate process) blocks every replica's next reservation; `resume` allows them again
  and closes the breaker;
* the state outlives the process that wrote it (a new client reads the same budget and pause switch);
* a ServiceAccount allowed only get/create/update on ConfigMaps in its own namespace is enough.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from responder import metrics
from responder.kube import client, state
from responder.models import cluster_state, decisions, settings, targets
from tests.kubeplane.plane import KubePlane

pytestmark = pytest.mark.integration

NOW = datetime.datetime(2030, 1, 1, 12, 0, tzinfo=datetime.UTC)
RACER = Path(__file__).with_name("racer.py")


def settings_data(kubeconfig: Path, namespace: str, **guardrails: Any) -> dict[str, Any]:
    return {
        "kubernetes": {"kubeconfig": str(kubeconfig), "own_namespace": namespace, "qps": 500, "burst": 500},
        "guardrails": guardrails,
    }


def make_settings(kubeconfig: Path, namespace: str, **guardrails: Any) -> settings.Settings:
    return settings.Settings.model_validate(settings_data(kubeconfig, namespace, **guardrails))


@pytest.fixture
async def stores(kube_plane: KubePlane, namespace: str) -> AsyncIterator[Any]:
    """`await make(**guardrails) -> StateStore`, each on its own API client (as separate replicas would be)."""
    opened: list[client.Kube] = []

    async def make(*, kubeconfig: Path | None = None, **guardrails: Any) -> state.StateStore:
        config = make_settings(kubeconfig or kube_plane.kubeconfig, namespace, **guardrails)
        kube = await client.Kube.connect(settings=config.kubernetes, metrics=metrics.Metrics())
        opened.append(kube)
        return state.StateStore(kube, namespace=namespace, settings=config)

    try:
        yield make
    finally:
        for kube in opened:
            await kube.close()


def target(name: str) -> targets.Target:
    return targets.Target(targets.WorkloadKind.DEPLOYMENT, "storm", name)


def run_racers(
    tmp_path: Path, config: dict[str, Any], action: str, *, processes: int, count: int
) -> list[str | None]:
    """Start `processes` racers, let them all go at once, and collect every result."""
    config_file = tmp_path / "racer-config.json"
    config_file.write_text(json.dumps(config), encoding="utf-8")
    go = tmp_path / f"go-{action.replace(':', '-')}"
    env = {**os.environ, "OOM_RESPONDER_RACE_GO": str(go)}
    racers = [
        subprocess.Popen(
            [
                sys.executable,
                str(RACER),
                str(config_file),
                f"{action}{'' if action == 'reserve' else index}",
                str(count),
                NOW.isoformat(),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for index in range(processes)
    ]
    go.touch()
    results: list[str | None] = []
    try:
        for racer in racers:
            out, err = racer.communicate(timeout=120)
            assert racer.returncode == 0, err
            results.extend(json.loads(out.strip().splitlines()[-1]))
    finally:
        for racer in racers:
            if racer.poll() is None:
                racer.kill()
                racer.wait()
    return results


async def test_the_first_writer_creates_the_object_even_when_several_race(stores: Any) -> None:
    replicas = [await stores(budget={"mutations": 10, "window_seconds": 3600}) for _ in range(4)]
    assert await replicas[0].read() == cluster_state.ClusterState()
    results = await asyncio.gather(*(replica.reserve(now=NOW) for replica in replicas))
    assert all(result.allowed for result in results)
    stored = await replicas[0].read()
    assert stored.budget_tokens == pytest.approx(6.0)


async def test_concurrent_tasks_and_clients_never_spend_more_than_the_budget(stores: Any) -> None:
    replicas = [await stores(budget={"mutations": 7, "window_seconds": 3600}) for _ in range(3)]
    results = await asyncio.gather(*(replicas[index % 3].reserve(now=NOW) for index in range(30)))
    allowed = [result for result in results if result.allowed]
    assert len(allowed) == 7
    assert {result.guardrail for result in results if not result.allowed} == {decisions.Guardrail.BUDGET}
    assert (await replicas[0].read()).budget_tokens == pytest.approx(0.0)


def requests(store: state.StateStore, verb: str, code: str) -> float:
    # Summed over the `resource` label.
    return sum(
        sample.value
        for family in store.kube.metrics.registry.collect()
        for sample in family.samples
        if sample.name == "oom_responder_kube_requests_total"
        and (sample.labels["verb"], sample.labels["code"]) == (verb, code)
    )


async def test_tasks_of_one_process_never_lose_a_race_to_each_other(stores: Any) -> None:
    replica = await stores(budget={"mutations": 50, "window_seconds": 3600})
    other = await stores(budget={"mutations": 50, "window_seconds": 3600})

    results = await asyncio.gather(*(replica.reserve(now=NOW) for _ in range(20)))

    assert all(result.allowed for result in results)
    assert requests(replica, "update", "409") == 0
    assert requests(replica, "get", "404") + requests(replica, "get", "200") == 1
    # Group commit: the reservations waiting for a turn are written together, so twenty cost far fewer writes.
    writes = requests(replica, "create", "201") + requests(replica, "update", "200")
    assert 1 <= writes < 20
    assert (await other.read()).budget_tokens == pytest.approx(30.0)
    # Another client writes in between: the next update loses once, re-reads, and counts both.
    assert await other.reserve_budget(now=NOW)
    assert await replica.reserve_budget(now=NOW)
    assert requests(replica, "update", "409") == 1
    assert (await other.read()).budget_tokens == pytest.approx(28.0)


async def test_a_refusal_is_not_made_on_a_remembered_state_alone(stores: Any) -> None:
    replica = await stores(budget={"mutations": 1, "window_seconds": 3600})
    other = await stores(budget={"mutations": 1, "window_seconds": 3600})
    assert await replica.reserve_budget(now=NOW)
    assert replica.last_known() is not None and replica.last_known().budget_tokens == pytest.approx(0.0)

    await other.return_budget(now=NOW)

    assert await replica.reserve_budget(now=NOW)


async def test_separate_processes_never_spend_more_than_the_budget(
    stores: Any, kube_plane: KubePlane, namespace: str, tmp_path: Path
) -> None:
    config = settings_data(kube_plane.kubeconfig, namespace, budget={"mutations": 9, "window_seconds": 3600})
    results = await asyncio.to_thread(run_racers, tmp_path, config, "reserve", processes=3, count=8)
    assert len(results) == 24
    assert results.count(None) == 9
    assert set(results) == {None, str(decisions.Guardrail.BUDGET)}
    replica = await stores(budget={"mutations": 9, "window_seconds": 3600})
    assert (await replica.read()).budget_tokens == pytest.approx(0.0)


async def test_a_returned_token_is_spent_by_the_next_reservation(stores: Any) -> None:
    replica = await stores(budget={"mutations": 1, "window_seconds": 3600})
    assert await replica.reserve_budget(now=NOW)
    assert not await replica.reserve_budget(now=NOW)
    await replica.return_budget(now=NOW)
    assert await replica.reserve_budget(now=NOW)


async def test_the_budget_refills_over_its_window(stores: Any) -> None:
    replica = await stores(budget={"mutations": 2, "window_seconds": 60})
    assert [await replica.reserve_budget(now=NOW) for _ in range(3)] == [True, True, False]
    assert not await replica.reserve_budget(now=NOW + datetime.timedelta(seconds=29))
    assert await replica.reserve_budget(now=NOW + datetime.timedelta(seconds=30))


async def test_fifty_workloads_at_once_open_the_breaker_exactly_once(stores: Any) -> None:
    blast = {"max_workloads": 10, "window_seconds": 300, "quiet_seconds": 600}
    replicas = [await stores(blast_radius=blast) for _ in range(3)]
    noted = await asyncio.gather(
        *(replicas[index % 3].note_alerting(target(f"w{index}"), now=NOW) for index in range(50))
    )
    transitions = [transition for _, transition in noted if transition is not None]
    assert transitions == [cluster_state.BreakerTransition.OPENED]
    stored = await replicas[0].read()
    assert stored.breaker_open
    assert len(stored.workloads) == 50
    reservation = await replicas[1].reserve(now=NOW)
    assert reservation.guardrail is decisions.Guardrail.BLAST_RADIUS

    # After the quiet period, a few workloads (fewer than the limit) alerting again close it, once.
    later = NOW + datetime.timedelta(seconds=600)
    noted = await asyncio.gather(
        *(replicas[index % 3].note_alerting(target(f"w{index}"), now=later) for index in range(8))
    )
    transitions = [transition for _, transition in noted if transition is not None]
    assert transitions == [cluster_state.BreakerTransition.CLOSED]
    assert not (await replicas[0].read()).breaker_open


async def test_separate_processes_alerting_at_once_see_one_breaker_opening(
    stores: Any, kube_plane: KubePlane, namespace: str, tmp_path: Path
) -> None:
    blast = {"max_workloads": 10, "window_seconds": 300, "quiet_seconds": 600}
    config = settings_data(kube_plane.kubeconfig, namespace, blast_radius=blast)
    results = await asyncio.to_thread(run_racers, tmp_path, config, "note:p", processes=3, count=17)
    assert len(results) == 51
    assert [result for result in results if result is not None] == [
        str(cluster_state.BreakerTransition.OPENED)
    ]
    stored = await (await stores(blast_radius=blast)).read()
    assert stored.breaker_open
    assert len(stored.workloads) == 51


async def test_pause_command_stops_every_replica_and_resume_reopens_and_closes_the_breaker(
    stores: Any, kube_plane: KubePlane, namespace: str, tmp_path: Path
) -> None:
    replicas = [await stores() for _ in range(2)]
    assert await replicas[0].reserve_budget(now=NOW)
    config_file = tmp_path / "responder.yaml"
    config_file.write_text(
        f"kubernetes:\n  kubeconfig: {kube_plane.kubeconfig}\n  own_namespace: {namespace}\n",
        encoding="utf-8",
    )

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "responder.cli", *args, "--config", str(config_file), "--by", "oncall"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    paused = await asyncio.to_thread(cli, "pause")
    assert paused.returncode == 0, paused.stderr
    assert "paused by oncall" in paused.stdout
    for replica in replicas:
        blocked = await replica.reserve(now=NOW)
        assert blocked.guardrail is decisions.Guardrail.PAUSED
        assert "oncall" in blocked.detail
    stored = await replicas[0].read()
    assert stored.paused
    assert stored.paused_by == "oncall"

    # Trip the breaker while paused: resume must close it too.
    await replicas[0].update(
        lambda current: (current.model_copy(update={"breaker_open": True, "last_new_workload_at": NOW}), None)
    )
    resumed = await asyncio.to_thread(cli, "resume")
    assert resumed.returncode == 0, resumed.stderr
    stored = await replicas[1].read()
    assert not stored.paused
    assert not stored.breaker_open
    assert all([await replica.reserve_budget(now=NOW) for replica in replicas])


async def test_the_state_outlives_the_client_that_wrote_it(stores: Any) -> None:
    first = await stores(budget={"mutations": 3, "window_seconds": 3600})
    assert await first.reserve_budget(now=NOW)
    await first.set_paused(True, by="alice", now=NOW)
    restarted = await stores(budget={"mutations": 3, "window_seconds": 3600})
    stored = await restarted.read()
    assert stored.paused
    assert stored.paused_by == "alice"
    assert stored.budget_tokens == pytest.approx(2.0)


async def test_configmap_rights_in_its_own_namespace_are_enough(
    stores: Any, namespace: str, service_account_kubeconfig: Any
) -> None:
    kubeconfig = service_account_kubeconfig(
        namespace,
        [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "create", "update"]}],
        name="responder",
    )
    replica = await stores(kubeconfig=kubeconfig, budget={"mutations": 2, "window_seconds": 3600})
    assert await replica.reserve_budget(now=NOW)
    noted, transition = await replica.note_alerting(target("one"), now=NOW)
    assert transition is None
    assert "storm/Deployment/one" in noted.workloads
    assert (await replica.set_paused(True, by="rbac", now=NOW)).paused
