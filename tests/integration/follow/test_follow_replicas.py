"""Three `oom-responder serve` processes follow one incident through, and one of them is killed with -9.

Horizons and intervals are seconds here (they are configurable down to that), so the whole story runs in
about half a minute on the real control plane: an OOMKilled alert to all three replicas → one raise (verified
once) and a restart schedule (every 5 s, 3 restarts) → verdicts at 4 s, 11 s and 18 s → the incident closed.
The replica that wrote the raise is killed with -9 right after it, while its rollout is being verified, and
started again later.

Aspects covered:
* one raise, one verification (the killed writer's rollout is picked up by a survivor; the restarted one does
  not repeat it), one restart per interval (the ledger holds `<incident>/restart-1..3`, stamps an interval
  apart at least), one verdict per horizon (one Event each), one closing Event, the record gone at the end;
* every replica's log and the collector agree that nothing was announced twice.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime
import itertools
import json
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import test_utils
from kubernetes_asyncio import client as k8s

from responder.models import follow_ups, ledgers, settings, targets
from tests.integration.guardrails import support
from tests.integration.replicas import test_three_replicas as three
from tests.kubeplane import incidents
from tests.kubeplane.plane import KubePlane

pytestmark = pytest.mark.integration

INTERVAL = 5.0
HORIZONS = [4.0, 11.0, 18.0]


@pytest.fixture
async def collector(
    aiohttp_server: Callable[..., Coroutine[Any, Any, test_utils.TestServer]],
) -> AsyncIterator[tuple[three.Collector, str]]:
    receiver = three.Collector()
    served = await aiohttp_server(receiver.app)
    yield receiver, str(served.make_url("")).rstrip("/")


@pytest.fixture
async def replicas(
    kube_plane: KubePlane, tmp_path: Path, collector: tuple[three.Collector, str], namespace: str
) -> AsyncIterator[list[three.Replica]]:
    _, collector_url = collector
    config = {
        "mode": "enforce",
        "server": {"shutdown_timeout_seconds": 10},
        "auth": {"mode": "bearer", "bearer_token_env": three.TOKEN_ENV},
        # The records live beside the workloads here (act_in_own_namespace), one namespace per test.
        "kubernetes": {"kubeconfig": str(kube_plane.kubeconfig), "own_namespace": namespace},
        "guardrails": {
            "act_in_own_namespace": True,
            "cooldown_seconds": {"rollout_restart": 1},
            "cap": {"max_actions": 100},
        },
        "verification": {"timeout_seconds": 60, "poll_seconds": 0.2},
        "follow_up": {
            "horizons_seconds": HORIZONS,
            "poll_seconds": 0.5,
            "claim_seconds": 3,
            "late_after_seconds": 2,
        },
        "playbooks": [
            {
                "name": "oom-raise-and-restart",
                "alerts": ["oom_killed"],
                "actions": [
                    "raise_memory",
                    {
                        "scheduled_restart": {
                            "interval_seconds": INTERVAL,
                            "max_count": 3,
                            "stable_verdicts_to_stop": 10,
                        }
                    },
                ],
            }
        ],
        "notifiers": {
            "webhooks": [
                {
                    "name": "collector",
                    "url_env": three.NOTICES_URL_ENV,
                    "digest_after": 1000,
                    "messages_per_second": 1000,
                    "timeout_seconds": 30,
                }
            ]
        },
    }
    settings.Settings.model_validate(config)
    config_file = tmp_path / "responder.yaml"
    config_file.write_text(yaml.safe_dump(config), encoding="utf-8")
    started = [
        three.Replica(i, config_file=config_file, workdir=tmp_path, collector_url=collector_url)
        for i in range(3)
    ]
    try:
        for replica in started:
            await replica.start()
        async with aiohttp.ClientSession() as session:
            await asyncio.gather(*(replica.wait_ready(session) for replica in started))
        yield started
    finally:
        for replica in started:
            if replica.alive:
                with contextlib.suppress(AssertionError):
                    await replica.stop()


async def follow_events(api: k8s.ApiClient, namespace: str) -> collections.Counter[str]:
    response = await k8s.EventsV1Api(api).list_namespaced_event(namespace, _preload_content=False)
    items = json.loads(await response.read())["items"]
    return collections.Counter(
        e.get("action") for e in items if e.get("reportingController") == "oom-responder"
    )


async def test_three_replicas_and_a_kill_9_give_one_restart_per_interval_and_one_verdict_per_horizon(
    replicas: list[three.Replica],
    collector: tuple[three.Collector, str],
    kube_api: k8s.ApiClient,
    namespace: str,
) -> None:
    received, _ = collector
    pods = await support.stage_oom_killed(kube_api, namespace, ["leaky"])
    body = support.oom_payload(
        [(namespace, pods["leaky"]["metadata"]["name"])], starts_at=datetime.datetime.now(datetime.UTC)
    )
    async with aiohttp.ClientSession() as session:
        statuses = await asyncio.gather(*(three.post(session, replica, body) for replica in replicas))
        assert statuses == ["accepted"] * 3

        async def raised() -> ledgers.LedgerEntry | None:
            entries = await support.ledger_of(kube_api, namespace, "leaky")
            return next((e for e in entries if e.action is settings.Action.RAISE_MEMORY), None)

        raise_entry = await incidents.wait_for(raised, timeout_seconds=60, what="the raise")
        # Kill the writer while it follows its rollout (and holds the schedule's record): -9, nothing cleaned.
        writer = next(r for r in replicas if r.identity == raise_entry.by)
        killed = writer.identity
        await writer.kill_9()

        where = targets.Target(targets.WorkloadKind.DEPLOYMENT, namespace, "leaky")

        async def finished() -> bool | None:
            lease = await k8s.CoordinationV1Api(kube_api).read_namespaced_lease(
                follow_ups.record_name(where), namespace
            )
            record = follow_ups.FollowUp.model_validate_json(lease.metadata.annotations[follow_ups.DATA_KEY])
            return True if record.ended is not None else None  # a tombstone: nothing left to follow

        async def restarted_once() -> bool | None:
            entries = await support.ledger_of(kube_api, namespace, "leaky")
            return True if any(e.action is settings.Action.ROLLOUT_RESTART for e in entries) else None

        await incidents.wait_for(restarted_once, timeout_seconds=60, what="the first scheduled restart")
        await writer.start()  # back, a new incarnation: it must not repeat anything
        await writer.wait_ready(session)
        await incidents.wait_for(finished, timeout_seconds=120, what="the follow-up to end")

    entries = await support.ledger_of(kube_api, namespace, "leaky")
    [raise_entry] = [e for e in entries if e.action is settings.Action.RAISE_MEMORY]
    restarts = [e for e in entries if e.action is settings.Action.ROLLOUT_RESTART]
    assert [e.occurrence for e in restarts] == [f"{raise_entry.occurrence}/restart-{n}" for n in (1, 2, 3)]
    gaps = [(b.at - a.at).total_seconds() for a, b in itertools.pairwise(restarts)]
    assert all(gap >= INTERVAL - 0.5 for gap in gaps), gaps
    assert raise_entry.result.value == "done"
    assert raise_entry.verdicts == {"4s": "stable", "11s": "stable", "18s": "stable"}

    events = await follow_events(kube_api, namespace)
    assert events["verify"] == 1, events
    response = await k8s.EventsV1Api(kube_api).list_namespaced_event(namespace, _preload_content=False)
    [verified_event] = [e for e in json.loads(await response.read())["items"] if e.get("action") == "verify"]
    assert verified_event["reason"] == "done"
    if verified_event["reportingInstance"] != killed:
        # The writer died while following its rollout: another replica finished it, and says so.
        assert f"after {killed} stopped following it" in verified_event["note"], verified_event["note"]
    assert events["verdict"] == len(HORIZONS), events
    assert events["rollout_restart"] == 3, events  # each scheduled restart is a rollout_restart
    assert events["close"] == 1, events

    await three.stop_all([r for r in replicas if r.alive])
    assert received.problems == []
    notices = received.all_notices()
    verdicts = [n["summary"] for n in notices if n["kind"] == "follow_up" and "verdict" in n["summary"]]
    # The killed incarnation's outbox died with it; everything else was delivered, and nothing twice.
    assert len(verdicts) == len(set(verdicts)) <= len(HORIZONS)
    closed = [n for n in notices if "Incident closed" in n["summary"]]
    assert len(closed) <= 1
    verified = [n for n in notices if n["kind"] == "verification"]
    assert len(verified) <= 1
