"""Guardrails end to end: the real pipeline (`engine.processing.Processor`) against the real control plane.

Aspects covered:
* the same OOMKilled occurrence delivered twice, then a new kill inside the cooldown: one raise, and the second
  kill is blocked by the cooldown (metric, Event, notice);
* a restart (a new Processor, new client, new state store) keeps the cooldown: it comes from the cluster;
* the per-workload cap reached: an escalation notice, and nothing written;
* 50 workloads OOMKilled at once with a blast radius of 10: no more than 10 raises, one breaker notice;
* the global budget spent: blocked until it refills (a small window, on an injected clock);
* paused: no replica writes anything.
"""

from __future__ import annotations

import asyncio
import datetime
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from kubernetes_asyncio import client as k8s

from responder import metrics as metrics_mod
from responder.engine import processing
from responder.kube import client, state
from responder.models import decisions, ledgers, notices, settings, work
from tests.integration.guardrails import support
from tests.kubeplane import incidents
from tests.kubeplane.plane import KubePlane

pytestmark = pytest.mark.integration

Action = settings.Action
Guardrail = decisions.Guardrail


@pytest.fixture
def own_namespace(kube_plane: KubePlane) -> Iterator[str]:
    """The service's own namespace, where its state object lives (apart from the workloads')."""
    name = f"responder-{secrets.token_hex(3)}"
    kube_plane.create_namespace(name)
    try:
        yield name
    finally:
        kube_plane.delete_namespace(name)


class Replica:
    """One responder replica: its own API client, state store, metrics and notices."""

    def __init__(
        self,
        processor: processing.Processor,
        recorder: support.Recorder,
        kube: client.Kube,
        store: state.StateStore,
    ) -> None:
        self.processor = processor
        self.store = store
        self.recorder = recorder
        self.kube = kube
        self.metrics = processor.metrics

    async def handle_all(self, items: list[work.WorkItem], *, workers: int = 16) -> None:
        gate = asyncio.Semaphore(workers)

        async def one(item: work.WorkItem) -> None:
            async with gate:
                await self.processor.handle(item)

        await asyncio.gather(*(one(item) for item in items))

    def blocks(self, guardrail: Guardrail) -> float:
        value = self.metrics.registry.get_sample_value(
            "oom_responder_guardrail_blocks_total", {"guardrail": guardrail.value}
        )
        return value or 0.0

    def refusals(self, guardrail: Guardrail) -> list[notices.Notice]:
        return [notice for notice in self.recorder.notices if notice.guardrail is guardrail]


@pytest.fixture
async def replicas(kube_plane: KubePlane, own_namespace: str) -> AsyncIterator[Any]:
    """`await make(clock=None, **guardrails) -> Replica`; every replica shares the cluster, nothing else."""
    made: list[Replica] = []

    async def make(*, clock: Any = None, **guardrails: Any) -> Replica:
        config = settings.Settings.model_validate(
            {
                "mode": "enforce",
                "identity": f"replica-{len(made)}",
                "kubernetes": {"kubeconfig": str(kube_plane.kubeconfig), "own_namespace": own_namespace},
                "verification": {"timeout_seconds": 5, "poll_seconds": 0.5},
                "guardrails": guardrails,
            }
        )
        metrics = metrics_mod.Metrics()
        kube = await client.Kube.connect(settings=config.kubernetes, metrics=metrics)
        store = state.StateStore(kube, namespace=own_namespace, settings=config)
        recorder = support.Recorder()
        extra = {"clock": clock} if clock is not None else {}
        processor = processing.Processor(
            settings=config, metrics=metrics, kube=kube, notifiers=recorder, state_store=store, **extra
        )
        replica = Replica(processor, recorder, kube, store)
        made.append(replica)
        return replica

    try:
        yield make
    finally:
        for replica in made:
            await replica.processor.close(0)
            await replica.kube.close()


def raises(entries: list[ledgers.LedgerEntry]) -> list[ledgers.LedgerEntry]:
    return [entry for entry in entries if entry.action is Action.RAISE_MEMORY]


async def test_a_repeat_and_a_new_kill_inside_the_cooldown_make_one_raise(
    replicas: Any, kube_api: k8s.ApiClient, namespace: str
) -> None:
    replica = await replicas()
    pods = await support.stage_oom_killed(kube_api, namespace, ["cart"])
    pod = pods["cart"]["metadata"]["name"]
    first = support.oom_payload([(namespace, pod)], starts_at=datetime.datetime.now(datetime.UTC))
    items = support.work_items(first, config=replica.processor.settings)
    await replica.handle_all(items)
    await replica.handle_all(items)  # Alertmanager delivers at least once: the same occurrence again

    assert len(raises(await support.ledger_of(kube_api, namespace, "cart"))) == 1
    assert await support.memory_limit_of(kube_api, namespace, "cart") != "128Mi"
    raised_to = await support.memory_limit_of(kube_api, namespace, "cart")

    # A new kill, a new occurrence, well inside the 30-minute cooldown. The rollout replaced the pod.
    running = await incidents.wait_for(
        lambda: _new_running_pod(kube_api, namespace, "cart", old=pod),
        what="the raised pod",
        timeout_seconds=60,
    )
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=2)
    await incidents.mark_oom_killed(kube_api, running, now=later)
    second = support.oom_payload([(namespace, running["metadata"]["name"])], starts_at=later)
    await replica.handle_all(support.work_items(second, config=replica.processor.settings))

    assert len(raises(await support.ledger_of(kube_api, namespace, "cart"))) == 1
    assert await support.memory_limit_of(kube_api, namespace, "cart") == raised_to
    assert replica.blocks(Guardrail.COOLDOWN) == 1
    [refusal] = replica.refusals(Guardrail.COOLDOWN)
    assert refusal.outcome is decisions.Outcome.BLOCKED
    assert "cooldown" in refusal.detail or "to go" in refusal.detail
    reasons = await _event_reasons(kube_api, namespace)
    assert "blocked:cooldown" in reasons

    # A restarted service (new process: new client, new state store, empty memory) keeps the cooldown.
    restarted = await replicas()
    await restarted.handle_all(support.work_items(second, config=restarted.processor.settings))
    assert restarted.blocks(Guardrail.COOLDOWN) == 1
    assert len(raises(await support.ledger_of(kube_api, namespace, "cart"))) == 1


async def _new_running_pod(
    api: k8s.ApiClient, namespace: str, app: str, *, old: str
) -> dict[str, Any] | None:
    pods = await k8s.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=f"app={app}")
    for item in pods.items:
        pod = incidents.to_dict(api, item)
        if (
            pod["metadata"]["name"] != old
            and not pod["metadata"].get("deletionTimestamp")
            and pod.get("status", {}).get("phase") == "Running"
        ):
            return pod
    return None


async def _event_reasons(api: k8s.ApiClient, namespace: str) -> set[str]:
    """Reasons of the Events the responder wrote in `namespace` (read through core/v1, which shows them all)."""
    listed = await k8s.CoreV1Api(api).list_namespaced_event(namespace)
    return {item.reason for item in listed.items if item.reporting_component == "oom-responder"}


async def test_cap_reached_escalates_and_writes_nothing(
    replicas: Any, kube_api: k8s.ApiClient, namespace: str
) -> None:
    replica = await replicas(cap={"max_actions": 3, "window_seconds": 3600})
    now = datetime.datetime.now(datetime.UTC)
    earlier = [
        ledgers.LedgerEntry(
            action=action,
            playbook="memory-high-scale-out",
            occurrence=f"earlier-{index}@x",
            at=now - datetime.timedelta(minutes=50 - index),
            by="replica-x",
        )
        for index, action in enumerate([Action.SCALE_OUT, Action.EVICT_POD, Action.ROLLOUT_RESTART])
    ]
    pods = await support.stage_oom_killed(
        kube_api, namespace, ["busy"], annotations={ledgers.ANNOTATION: ledgers.dump(earlier)}
    )
    body = support.oom_payload([(namespace, pods["busy"]["metadata"]["name"])], starts_at=now)
    await replica.handle_all(support.work_items(body, config=replica.processor.settings))

    assert await support.memory_limit_of(kube_api, namespace, "busy") == "128Mi"
    assert raises(await support.ledger_of(kube_api, namespace, "busy")) == []
    assert replica.blocks(Guardrail.CAP) == 1
    escalations = replica.recorder.of_kind(notices.NoticeKind.ESCALATION)
    assert [notice.guardrail for notice in escalations] == [Guardrail.CAP]
    assert "humans" in escalations[0].detail
    assert "blocked:cap" in await _event_reasons(kube_api, namespace)


async def test_fifty_workloads_at_once_with_a_blast_radius_of_ten(
    replicas: Any, kube_api: k8s.ApiClient, namespace: str
) -> None:
    blast = {"max_workloads": 10, "window_seconds": 300, "quiet_seconds": 600}
    fleet = [await replicas(blast_radius=blast, budget={"mutations": 100}) for _ in range(2)]
    names = [f"w{index:02d}" for index in range(50)]
    pods = await support.stage_oom_killed(kube_api, namespace, names)
    body = support.oom_payload(
        [(namespace, pods[name]["metadata"]["name"]) for name in names],
        starts_at=datetime.datetime.now(datetime.UTC),
    )
    items = support.work_items(body, config=fleet[0].processor.settings)
    # Both replicas get every alert (Alertmanager in HA, or a retry landing on the other one).
    await asyncio.gather(*(replica.handle_all(items) for replica in fleet))

    raised = [name for name in names if raises(await support.ledger_of(kube_api, namespace, name))]
    assert 0 < len(raised) <= 10
    for name in raised:
        assert len(raises(await support.ledger_of(kube_api, namespace, name))) == 1
    breaker_notices = [
        notice for replica in fleet for notice in replica.recorder.of_kind(notices.NoticeKind.BREAKER)
    ]
    assert len(breaker_notices) == 1
    assert "opened" in breaker_notices[0].summary
    assert sum(replica.blocks(Guardrail.BLAST_RADIUS) for replica in fleet) >= 50 - len(raised)


async def test_a_spent_budget_blocks_until_it_refills(
    replicas: Any, kube_api: k8s.ApiClient, namespace: str
) -> None:
    offset = datetime.timedelta(0)

    def clock() -> datetime.datetime:
        return datetime.datetime.now(datetime.UTC) + offset

    replica = await replicas(clock=clock, budget={"mutations": 2, "window_seconds": 60})
    names = ["a", "b", "c"]
    pods = await support.stage_oom_killed(kube_api, namespace, names)
    bodies = {
        name: support.oom_payload([(namespace, pods[name]["metadata"]["name"])], starts_at=clock())
        for name in names
    }
    for name in names:  # one after the other, so which one is blocked is known
        await replica.handle_all(support.work_items(bodies[name], config=replica.processor.settings))
    assert [len(raises(await support.ledger_of(kube_api, namespace, name))) for name in names] == [1, 1, 0]
    assert replica.blocks(Guardrail.BUDGET) == 1
    assert await support.memory_limit_of(kube_api, namespace, "c") == "128Mi"

    # Alertmanager repeats the alert; 30 s later (half the window) one token is back.
    offset = datetime.timedelta(seconds=31)
    await replica.handle_all(support.work_items(bodies["c"], config=replica.processor.settings))
    assert len(raises(await support.ledger_of(kube_api, namespace, "c"))) == 1
    assert replica.blocks(Guardrail.BUDGET) == 1


async def test_paused_nothing_is_written_by_any_replica(
    replicas: Any, kube_api: k8s.ApiClient, namespace: str
) -> None:
    fleet = [await replicas() for _ in range(3)]
    await fleet[0].store.set_paused(True, by="oncall", now=datetime.datetime.now(datetime.UTC))
    names = ["p1", "p2"]
    pods = await support.stage_oom_killed(kube_api, namespace, names)
    body = support.oom_payload(
        [(namespace, pods[name]["metadata"]["name"]) for name in names],
        starts_at=datetime.datetime.now(datetime.UTC),
    )
    items = support.work_items(body, config=fleet[0].processor.settings)
    await asyncio.gather(*(replica.handle_all(items) for replica in fleet))

    for name in names:
        assert await support.memory_limit_of(kube_api, namespace, name) == "128Mi"
        assert raises(await support.ledger_of(kube_api, namespace, name)) == []
    assert sum(replica.blocks(Guardrail.PAUSED) for replica in fleet) == 6
    for replica in fleet:
        assert all("oncall" in notice.detail for notice in replica.refusals(Guardrail.PAUSED))
    assert "blocked:paused" in await _event_reasons(kube_api, namespace)


async def test_a_breaker_closed_by_resume_is_announced_once_and_the_open_notice_says_what_resume_does(
    replicas: Any, kube_api: k8s.ApiClient, namespace: str
) -> None:
    blast = {"max_workloads": 1, "window_seconds": 300, "quiet_seconds": 600}
    fleet = [await replicas(blast_radius=blast) for _ in range(2)]
    names = ["a", "b", "c"]
    pods = await support.stage_oom_killed(kube_api, namespace, names)
    now = datetime.datetime.now(datetime.UTC)

    def items(name: str) -> list[work.WorkItem]:
        body = support.oom_payload([(namespace, pods[name]["metadata"]["name"])], starts_at=now)
        return support.work_items(body, config=fleet[0].processor.settings)

    await fleet[0].handle_all(items("a"))
    await fleet[0].handle_all(items("b"))  # two workloads alerting: more than one opens the breaker
    [opened] = fleet[0].recorder.of_kind(notices.NoticeKind.BREAKER)
    assert "opened" in opened.summary
    assert "`oom-responder resume` closes it now and counts afresh" in opened.detail

    await fleet[1].store.resume(by="on-call", now=datetime.datetime.now(datetime.UTC))  # what the CLI does
    await asyncio.gather(*(replica.handle_all(items("c")) for replica in fleet))

    closed = [
        notice
        for replica in fleet
        for notice in replica.recorder.of_kind(notices.NoticeKind.BREAKER)
        if "closed" in notice.summary
    ]
    assert len(closed) == 1
    assert "mitigations are allowed again" in closed[0].detail
    assert raises(await support.ledger_of(kube_api, namespace, "c"))
