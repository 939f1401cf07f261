"""Follow-ups on the real control plane: the CAS store, verdicts, restart schedules, take-over after a death.

Time is injected (a clock the test moves), so horizons of hours pass in an instant; the cluster, the pods'
status (restart counts, `lastState` OOMKilled, set by the test as a kubelet would) and every write are real.

Aspects covered:
* the store: racing replicas never lose an update (one Lease per workload, compare-and-swap); a write at a
  stale resourceVersion is refused; a hand-edited record is refused whole, never overwritten, reported once;
* verdicts: stable at the first horizon (pod state only, said so), failed after a new OOM kill; each goes into
  the ledger entry, an Event, a notice and the metric; the follow-up then ends (not closed) and the record goes;
* a clean series closes the incident with "no OOM kills for ..." and deletes the record;
* two replicas ticking at once take each verdict once; a replica that claimed and died (its claim never
  released) holds nothing after the claim lapses, and the verdict taken late says so;
* a restart schedule: one restart per interval (stamp + ledger entry `<incident>/restart-<n>`), none twice when
  polled again, a restart written by a replica that died before recording it is not repeated, stop at max
  count; an image change stops it and starts a fresh verdict series; opt-out stops it; a paused rollout and a
  workload scaled to 0 are said once, not restarted;
* the workload deleted: the follow-up ends, said once;
* a rollout verification left by a dead replica is picked up, reported once, and the ledger entry gets its result;
* `oom-responder schedules list` shows a schedule and `cancel NS/KIND/NAME` stops it (announced once, no restart
  after); a verdict whose ledger entry was edited away by hand says it is not noted there, and the ledger is
  left as it was.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client as k8s

from responder import metrics as metrics_mod
from responder.engine import following as engine_following
from responder.kube import client, errors, state
from responder.kube import follow_ups as store_mod
from responder.logic import following, schedules
from responder.models import decisions, follow_ups, ledgers, notices, settings, targets
from tests.integration.guardrails import support
from tests.kubeplane import incidents
from tests.kubeplane.plane import KubePlane

pytestmark = pytest.mark.integration

INCIDENT = "f00d@2026-03-01T11:59:00Z"


class Clock:
    """The injected time: starts at about the real now (pods' timestamps are real), moves when the test says."""

    def __init__(self) -> None:
        # A few seconds back: a kill the test marks (kubelet times have whole seconds) falls after the
        # mitigation even on a control plane fast enough to do everything within one second.
        self.now = datetime.datetime.now(datetime.UTC).replace(microsecond=0) - datetime.timedelta(seconds=5)

    def __call__(self) -> datetime.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += datetime.timedelta(seconds=seconds)


def make_settings(plane: KubePlane, namespace: str, **follow_up: Any) -> settings.Settings:
    return settings.Settings.model_validate(
        {
            "mode": "enforce",
            "kubernetes": {
                "kubeconfig": str(plane.kubeconfig),
                "own_namespace": namespace,
                "qps": 200,
                "burst": 200,
            },
            "guardrails": {
                "act_in_own_namespace": True,
                "cooldown_seconds": {"rollout_restart": 1},
                "cap": {"max_actions": 100},
            },
            "follow_up": {"horizons_seconds": [3600, 21600], **follow_up},
        }
    )


class Replica:
    """One replica's follow-up machinery (its own API client, identity and notices)."""

    def __init__(
        self, kube: client.Kube, config: settings.Settings, namespace: str, identity: str, clock: Clock
    ):
        self.kube = kube
        self.recorder = support.Recorder()
        self.metrics = metrics_mod.Metrics()
        self.store = store_mod.FollowUpStore(kube, namespace=namespace)
        self.following = engine_following.Following(
            settings=config,
            metrics=self.metrics,
            kube=kube,
            store=self.store,
            state_store=state.StateStore(kube, namespace=namespace, settings=config),
            notifiers=self.recorder,
            identity=identity,
            own_namespace=namespace,
            clock=clock,
        )

    async def tick(self) -> None:
        await asyncio.gather(*await self.following.tick())

    def follow_up_notices(self) -> list[notices.Notice]:
        return [n for n in self.recorder.notices if n.kind is not notices.NoticeKind.VERIFICATION]


@pytest.fixture
async def replicas(kube_plane: KubePlane, namespace: str) -> AsyncIterator[Callable[..., Awaitable[Replica]]]:
    opened: list[client.Kube] = []
    clock = Clock()

    async def make(identity: str = "replica-a", **follow_up: Any) -> Replica:
        config = make_settings(kube_plane, namespace, **follow_up)
        kube = await client.Kube.connect(settings=config.kubernetes, metrics=metrics_mod.Metrics())
        opened.append(kube)
        return Replica(kube, config, namespace, identity, clock)

    make.clock = clock  # type: ignore[attr-defined]  # the shared clock, for the test to move
    try:
        yield make
    finally:
        for kube in opened:
            await kube.close()


def clock_of(make: Callable[..., Awaitable[Replica]]) -> Clock:
    found: Clock = make.clock  # type: ignore[attr-defined]
    return found


async def deployment(api: k8s.ApiClient, namespace: str, name: str, *, replicas: int = 1) -> dict[str, Any]:
    """A Deployment whose ledger already records the mitigation being followed, with its pods running."""
    entry = ledgers.LedgerEntry(
        action=settings.Action.RAISE_MEMORY,
        playbook="oom-raise-memory",
        occurrence=INCIDENT,
        at=datetime.datetime.now(datetime.UTC),
        by="replica-a",
        **{"from": "128Mi", "to": "228Mi"},
    )
    created = await incidents.create_deployment(
        api, namespace, name, replicas=replicas, annotations={ledgers.ANNOTATION: ledgers.dump([entry])}
    )
    await incidents.wait_for_running_pods(
        api, namespace, selector=f"app={name}", count=replicas, timeout_seconds=120
    )
    return created


async def over(store: store_mod.FollowUpStore, where: targets.Target) -> bool:
    """Nothing left to follow: no record, or its tombstone (the service never deletes one)."""
    stored = await store.read(where)
    return stored is None or (stored.record is not None and stored.record.ended is not None)


def target(namespace: str, name: str) -> targets.Target:
    return targets.Target(targets.WorkloadKind.DEPLOYMENT, namespace, name)


async def track(
    replica: Replica, created: dict[str, Any], clock: Clock, **update: Any
) -> follow_ups.FollowUp:
    meta = created["metadata"]
    record = following.begin(
        target=target(meta["namespace"], meta["name"]),
        uid=meta["uid"],
        incident=INCIDENT,
        playbook="oom-raise-memory",
        action=settings.Action.RAISE_MEMORY,
        acted_at=clock(),
        config=replica.following.config,
    ).model_copy(update=update)
    stored = await replica.following.track(record)
    assert stored is not None
    return stored


async def events_of(api: k8s.ApiClient, namespace: str, action: str) -> list[dict[str, Any]]:
    """The responder's Events with this action (raw JSON: Events of other controllers lack fields the
    generated model requires)."""
    response = await k8s.EventsV1Api(api).list_namespaced_event(namespace, _preload_content=False)
    items = json.loads(await response.read())["items"]
    return [e for e in items if e.get("action") == action and e.get("reportingController") == "oom-responder"]


async def read_deployment(api: k8s.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    return incidents.to_dict(api, await k8s.AppsV1Api(api).read_namespaced_deployment(name, namespace))


# ---- the store --------------------------------------------------------------------------------------------


async def test_racing_replicas_never_lose_an_update_of_one_record(
    replicas: Callable[..., Awaitable[Replica]], namespace: str
) -> None:
    clock = clock_of(replicas)
    group = [await replicas(f"replica-{i}") for i in range(3)]
    where = target(namespace, "web")
    first = following.begin(
        target=where,
        uid=None,
        incident=INCIDENT,
        playbook="p",
        action=settings.Action.RAISE_MEMORY,
        acted_at=clock(),
        config=group[0].following.config,
    )

    def bump(current: follow_ups.FollowUp | None) -> follow_ups.FollowUp:
        base = current or first
        return base.model_copy(update={"restarts": {"n": base.restarts.get("n", 0) + 1}})

    await asyncio.gather(*(r.store.update(where, bump) for r in group for _ in range(5)))
    stored = await group[0].store.read(where)
    assert stored is not None and stored.record is not None
    assert stored.record.restarts == {"n": 15}
    with pytest.raises(errors.KubeConflict):
        await group[1].store.replace(
            store_mod.Stored(stored.name, "1", stored.record),
            stored.record.model_copy(update={"restarts": {}}),
        )


async def test_a_hand_edited_record_is_refused_whole_reported_once_and_removable(
    replicas: Callable[..., Awaitable[Replica]], namespace: str, kube_api: k8s.ApiClient
) -> None:
    clock = clock_of(replicas)
    a, b = await replicas("replica-a"), await replicas("replica-b")
    created = await deployment(kube_api, namespace, "edited")
    stored = await track(a, created, clock)
    name = follow_ups.record_name(stored.target)
    leases = k8s.CoordinationV1Api(kube_api)
    lease = await leases.read_namespaced_lease(name, namespace)
    data = json.loads(lease.metadata.annotations[follow_ups.DATA_KEY])
    data["horizons"][0]["due_at"] = "tomorrow"
    await leases.patch_namespaced_lease(
        name,
        namespace,
        {"metadata": {"annotations": {follow_ups.DATA_KEY: json.dumps(data)}}},
        **incidents.MERGE_PATCH,
    )
    clock.advance(7200)
    await asyncio.gather(a.tick(), b.tick())
    await asyncio.gather(a.tick(), b.tick())
    reports = [n for r in (a, b) for n in r.recorder.notices if n.reason is decisions.Reason.INVALID]
    assert len(reports) == 1
    assert "horizons.0.due_at" in reports[0].detail and "schedules cancel" in reports[0].detail
    with pytest.raises(errors.KubeInvalid):
        await a.store.update(stored.target, lambda current: current)
    unread = await a.store.read(stored.target)
    assert unread is not None and unread.record is None
    assert await a.store.retire(unread, stored)  # what `oom-responder schedules cancel` does with it
    assert await over(a.store, stored.target)


# ---- verdicts ---------------------------------------------------------------------------------------------


async def test_a_stable_then_failed_series_is_noted_everywhere_and_not_closed(
    replicas: Callable[..., Awaitable[Replica]], namespace: str, kube_api: k8s.ApiClient
) -> None:
    clock = clock_of(replicas)
    a = await replicas()
    created = await deployment(kube_api, namespace, "web")
    await track(a, created, clock)
    await a.tick()
    assert a.follow_up_notices() == []  # nothing due yet

    clock.advance(3600)
    await a.tick()
    [first] = a.follow_up_notices()
    assert first.summary == f"1h verdict for {namespace}/Deployment/web: stable"
    assert "pod state only" in first.detail and first.incident == INCIDENT
    assert (
        a.metrics.registry.get_sample_value(
            "oom_responder_verdicts_total", {"horizon": "1h", "verdict": "stable"}
        )
        == 1
    )

    pods = await incidents.wait_for_running_pods(kube_api, namespace, selector="app=web", count=1)
    await incidents.mark_oom_killed(kube_api, pods[0])
    clock.advance(21600 - 3600)
    await a.tick()
    [verdict] = a.follow_up_notices()[1:]
    assert verdict.kind is notices.NoticeKind.ESCALATION and "6h verdict" in verdict.summary, verdict
    assert "OOMKilled again" in verdict.detail
    # The last horizon: its verdict ends the follow-up, and says the incident is not closed.
    assert verdict.outcome is decisions.Outcome.ESCALATED
    assert (
        "Follow-up over, incident not closed: 1 of 2 verdicts were not stable (6h failed)" in verdict.summary
    )
    [entry] = await support.ledger_of(kube_api, namespace, "web")
    assert entry.verdicts == {"1h": "stable", "6h": "failed"}
    reasons = sorted(e["reason"] for e in await events_of(kube_api, namespace, "verdict"))
    assert reasons == ["verdict:failed", "verdict:stable"]
    assert await over(a.store, target(namespace, "web"))


async def test_a_clean_series_closes_the_incident_and_two_replicas_take_each_verdict_once(
    replicas: Callable[..., Awaitable[Replica]], namespace: str, kube_api: k8s.ApiClient
) -> None:
    clock = clock_of(replicas)
    a, b = await replicas("replica-a"), await replicas("replica-b")
    created = await deployment(kube_api, namespace, "clean", replicas=2)
    await track(a, created, clock)
    for _ in range(2):
        clock.advance(21600)
        await asyncio.gather(a.tick(), b.tick(), a.tick(), b.tick())
    all_notices = a.follow_up_notices() + b.follow_up_notices()
    verdicts = sorted(n.summary for n in all_notices if "verdict" in n.summary)
    assert verdicts == [
        f"1h verdict for {namespace}/Deployment/clean: stable",
        f"6h verdict for {namespace}/Deployment/clean: stable. Incident closed: no OOM kills for 6h, "
        "memory not measured (no Prometheus)",
    ]
    assert len(await events_of(kube_api, namespace, "close")) == 1
    assert len(await events_of(kube_api, namespace, "verdict")) == 2
    assert await over(a.store, target(namespace, "clean"))


async def test_a_claim_left_by_a_dead_replica_lapses_and_the_late_verdict_says_so(
    replicas: Callable[..., Awaitable[Replica]], namespace: str, kube_api: k8s.ApiClient
) -> None:
    clock = clock_of(replicas)
    dead, alive = (
        await replicas("replica-dead", claim_seconds=120),
        await replicas("replica-b", claim_seconds=120),
    )
    created = await deployment(kube_api, namespace, "orphan")
    stored = await track(dead, created, clock)
    clock.advance(3600)
    # The dead replica claimed the due verdict, then was killed with -9: it never worked on it nor released it.
    held = await dead.store.read(stored.target)
    assert held is not None and held.record is not None
    claimed = following.claim(held.record, holder="replica-dead", now=clock(), seconds=120)
    assert claimed is not None
    await dead.store.replace(held, claimed)

    await alive.tick()
    assert alive.follow_up_notices() == []  # the claim is still live
    clock.advance(3 * 3600)  # nobody ran for three hours
    await alive.tick()
    [verdict] = alive.follow_up_notices()
    assert "1h verdict" in verdict.summary
    assert "Taken 3h late: no replica was running when it fell due." in verdict.detail


# ---- restart schedules --------------------------------------------------------------------------------------


def schedule_for(clock: Clock, created: dict[str, Any], **options: Any) -> follow_ups.Schedule:
    made, _ = schedules.new_schedule(
        options=settings.ScheduledRestart(**options),
        playbook="oom-raise-memory",
        incident=INCIDENT,
        workload=created,
        now=clock(),
        time_to_oom_seconds=None,
    )
    return made


async def restarts_in_ledger(api: k8s.ApiClient, namespace: str, name: str) -> list[str]:
    return [
        e.occurrence
        for e in await support.ledger_of(api, namespace, name)
        if e.action is settings.Action.ROLLOUT_RESTART
    ]


async def test_one_restart_per_interval_until_the_max_count_even_across_a_death(
    replicas: Callable[..., Awaitable[Replica]], namespace: str, kube_api: k8s.ApiClient
) -> None:
    clock = clock_of(replicas)
    a, b = await replicas("replica-a"), await replicas("replica-b")
    created = await deployment(kube_api, namespace, "leaky")
    await track(
        a,
        created,
        clock,
        horizons=(),
        schedule=schedule_for(clock, created, interval_seconds=600, max_count=3),
    )

    clock.advance(600)
    await asyncio.gather(a.tick(), b.tick())
    await asyncio.gather(a.tick(), b.tick())  # polled again at the same time: nothing more
    assert await restarts_in_ledger(kube_api, namespace, "leaky") == [f"{INCIDENT}/restart-1"]
    workload = await read_deployment(kube_api, namespace, "leaky")
    stamp = workload["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
    assert stamp == (clock()).strftime("%Y-%m-%dT%H:%M:%SZ")

    # Restart 2 is written by a replica that dies before recording it: the record still says count 1.
    clock.advance(600)
    stored = await a.store.read(target(namespace, "leaky"))
    assert stored is not None and stored.record is not None and stored.record.schedule is not None
    for _ in range(10):  # the controllers write the Deployment's status too: read again on a 409
        workload = await read_deployment(kube_api, namespace, "leaky")  # as the dying replica read it
        entry = schedules.restart_entry(
            schedule=stored.record.schedule,
            workload=workload,
            now=clock(),
            identity="replica-dead",
            thread=None,
        )
        try:
            await a.kube.patch(
                f"/apis/apps/v1/namespaces/{namespace}/deployments/leaky",
                schedules.restart_patch(workload=workload, entry=entry),
            )
            break
        except errors.KubeConflict:
            continue
    await asyncio.gather(a.tick(), b.tick())
    assert await restarts_in_ledger(kube_api, namespace, "leaky") == [
        f"{INCIDENT}/restart-1",
        f"{INCIDENT}/restart-2",
    ]

    clock.advance(600)
    await asyncio.gather(a.tick(), b.tick())
    clock.advance(600)
    await asyncio.gather(a.tick(), b.tick())
    assert await restarts_in_ledger(kube_api, namespace, "leaky") == [
        f"{INCIDENT}/restart-{n}" for n in (1, 2, 3)
    ]
    summaries = [n.summary for r in (a, b) for n in r.follow_up_notices()]
    assert sorted(s for s in summaries if s.startswith("Scheduled restart")) == [
        f"Scheduled restart {n} of 3 of {namespace}/Deployment/leaky" for n in (1, 2, 3)
    ]
    assert [s for s in summaries if "stopped" in s] == [
        f"Restart schedule of {namespace}/Deployment/leaky stopped (max count) after 3 restart(s)"
    ]
    assert (
        sum(
            r.metrics.registry.get_sample_value("oom_responder_scheduled_restarts_total", {"result": "done"})
            or 0
            for r in (a, b)
        )
        == 3
    )
    assert await over(a.store, target(namespace, "leaky"))  # nothing left to follow


async def test_an_image_change_stops_the_schedule_and_starts_a_fresh_verdict_series(
    replicas: Callable[..., Awaitable[Replica]], namespace: str, kube_api: k8s.ApiClient
) -> None:
    clock = clock_of(replicas)
    a = await replicas()
    created = await deployment(kube_api, namespace, "fixed")
    await track(a, created, clock, horizons=(), schedule=schedule_for(clock, created, interval_seconds=600))
    await k8s.AppsV1Api(kube_api).patch_namespaced_deployment(
        "fixed",
        namespace,
        {
            "spec": {
                "template": {"spec": {"containers": [{"name": "app", "image": "registry.invalid/app:2-fix"}]}}
            }
        },
    )
    clock.advance(600)
    await a.tick()
    [stop] = a.follow_up_notices()
    assert "stopped (image changed) after 0 restart(s)" in stop.summary
    assert "registry.invalid/app:1 → registry.invalid/app:2-fix" in stop.detail
    assert "A fresh series of verdicts starts now (1h, 6h)" in stop.detail
    assert await restarts_in_ledger(kube_api, namespace, "fixed") == []
    stored = await a.store.read(target(namespace, "fixed"))
    assert stored is not None and stored.record is not None
    assert [h.due_at for h in stored.record.horizons] == [
        clock() + datetime.timedelta(seconds=s) for s in (3600, 21600)
    ]


async def test_opt_out_stops_the_schedule_and_paused_or_scaled_to_zero_are_said_once(
    replicas: Callable[..., Awaitable[Replica]], namespace: str, kube_api: k8s.ApiClient
) -> None:
    clock = clock_of(replicas)
    a = await replicas()
    apps = k8s.AppsV1Api(kube_api)
    paused = await deployment(kube_api, namespace, "paused")
    zero = await deployment(kube_api, namespace, "zero")
    opted = await deployment(kube_api, namespace, "opted")
    for created in (paused, zero, opted):
        await track(
            a, created, clock, horizons=(), schedule=schedule_for(clock, created, interval_seconds=600)
        )
    await apps.patch_namespaced_deployment("paused", namespace, {"spec": {"paused": True}})
    await apps.patch_namespaced_deployment("zero", namespace, {"spec": {"replicas": 0}})
    await apps.patch_namespaced_deployment(
        "opted", namespace, {"metadata": {"annotations": {"oom-responder.io/enabled": "false"}}}
    )
    clock.advance(600)
    await a.tick()
    await a.tick()
    by_name = {n.target.name: n for n in a.follow_up_notices() if n.target is not None}
    assert len(a.follow_up_notices()) == 3
    assert by_name["paused"].outcome is decisions.Outcome.BLOCKED and "paused" in by_name["paused"].detail
    assert by_name["zero"].outcome is decisions.Outcome.SKIPPED and "scaled to 0" in by_name["zero"].detail
    assert "stopped (opted out)" in by_name["opted"].summary
    for name in ("paused", "zero", "opted"):
        assert await restarts_in_ledger(kube_api, namespace, name) == []


async def test_a_deleted_workload_ends_its_follow_up_said_once(
    replicas: Callable[..., Awaitable[Replica]], namespace: str, kube_api: k8s.ApiClient
) -> None:
    clock = clock_of(replicas)
    a, b = await replicas("replica-a"), await replicas("replica-b")
    created = await deployment(kube_api, namespace, "gone")
    await track(a, created, clock, schedule=schedule_for(clock, created, interval_seconds=600))
    await k8s.AppsV1Api(kube_api).delete_namespaced_deployment("gone", namespace)
    clock.advance(600)
    await asyncio.gather(a.tick(), b.tick())
    await asyncio.gather(a.tick(), b.tick())
    [ended] = a.follow_up_notices() + b.follow_up_notices()
    assert ended.summary == f"Follow-up of {namespace}/Deployment/gone ended: the workload was deleted"
    assert (
        "2 pending verdict(s)" in ended.detail and "the restart schedule (0 restart(s) done)" in ended.detail
    )
    assert await over(a.store, target(namespace, "gone"))


# ---- verification left by a dead replica ------------------------------------------------------------------


async def test_a_rollout_verification_left_by_a_dead_replica_is_picked_up_once(
    replicas: Callable[..., Awaitable[Replica]], namespace: str, kube_api: k8s.ApiClient
) -> None:
    clock = clock_of(replicas)
    a, b = await replicas("replica-a", claim_seconds=30), await replicas("replica-b", claim_seconds=30)
    created = await deployment(kube_api, namespace, "raised")
    patched = await k8s.AppsV1Api(kube_api).patch_namespaced_deployment(
        "raised",
        namespace,
        {
            "spec": {
                "template": {
                    "spec": {"containers": [{"name": "app", "resources": {"limits": {"memory": "228Mi"}}}]}
                }
            }
        },
    )
    verification = follow_ups.Verification(
        action=settings.Action.RAISE_MEMORY,
        generation=patched.metadata.generation,
        since=clock(),
        deadline=clock() + datetime.timedelta(seconds=300),
        summary=f"memory limit of {namespace}/Deployment/raised container app raised 128Mi → 228Mi",
        from_value="128Mi",
        to_value="228Mi",
    )
    # The writing replica recorded the pending verification under its claim, then died (kill -9).
    dead_claim = follow_ups.Claim(holder="replica-dead", until=clock() + datetime.timedelta(seconds=30))
    await track(a, created, clock, horizons=(), verification=verification, claim=dead_claim)
    await asyncio.gather(a.tick(), b.tick())
    assert a.recorder.notices == b.recorder.notices == []
    clock.advance(31)
    await asyncio.gather(a.tick(), b.tick())
    found = [n for r in (a, b) for n in r.recorder.of_kind(notices.NoticeKind.VERIFICATION)]
    [done] = found
    assert done.outcome is decisions.Outcome.DONE and done.reason is decisions.Reason.ROLLOUT_COMPLETE
    assert "rollout completed" in done.summary and "after replica-dead stopped following it" in done.detail
    [entry] = await support.ledger_of(kube_api, namespace, "raised")
    assert entry.result is decisions.Outcome.DONE
    assert [e["reason"] for e in await events_of(kube_api, namespace, "verify")] == ["done"]
    assert await over(a.store, target(namespace, "raised"))


async def test_a_record_written_ahead_is_confirmed_from_the_ledger_or_dropped(
    replicas: Callable[..., Awaitable[Replica]], namespace: str, kube_api: k8s.ApiClient
) -> None:
    """The writer died right after (or before) its write, leaving the record unconfirmed under its claim."""
    clock = clock_of(replicas)
    alive = await replicas("replica-b", claim_seconds=30)
    written = await deployment(kube_api, namespace, "written")  # its ledger records the mitigation
    never = await incidents.create_deployment(kube_api, namespace, "never", replicas=1)  # no ledger entry
    dead_claim = follow_ups.Claim(holder="replica-dead", until=clock() + datetime.timedelta(seconds=30))
    for created in (written, never):
        await track(alive, created, clock, confirmed=False, claim=dead_claim)
    await alive.tick()
    stored = await alive.store.read(target(namespace, "written"))
    assert (
        stored is not None and stored.record is not None and not stored.record.confirmed
    )  # claim still live

    clock.advance(31)
    await alive.tick()
    stored = await alive.store.read(target(namespace, "written"))
    assert stored is not None and stored.record is not None
    assert stored.record.confirmed and stored.record.claim is None
    assert [h.verdict for h in stored.record.horizons] == [None, None]
    assert await over(alive.store, target(namespace, "never"))  # the write never happened: dropped
    assert alive.follow_up_notices() == []


def run_schedules(plane: KubePlane, namespace: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`oom-responder schedules ...` as an operator runs it, against this namespace's records."""
    config = plane.workdir / f"schedules-{namespace}.yaml"
    config.write_text(
        yaml.safe_dump({"kubernetes": {"kubeconfig": str(plane.kubeconfig), "own_namespace": namespace}}),
        encoding="utf-8",
    )
    return subprocess.run(
        ["oom-responder", "schedules", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_schedules_list_and_cancel_stop_a_schedule_announced_once(
    replicas: Callable[..., Awaitable[Replica]],
    namespace: str,
    kube_api: k8s.ApiClient,
    kube_plane: KubePlane,
) -> None:
    clock = clock_of(replicas)
    a, b = await replicas("replica-a"), await replicas("replica-b")
    created = await deployment(kube_api, namespace, "cancelled")
    await track(a, created, clock, schedule=schedule_for(clock, created, interval_seconds=600))

    listed = await asyncio.to_thread(run_schedules, kube_plane, namespace, "list")
    assert listed.returncode == 0, listed.stderr
    assert f"{namespace}/Deployment/cancelled" in listed.stdout
    assert (
        "schedule: restart every 10m, 0 done" in listed.stdout
        and "verdicts: none yet; next 1h" in listed.stdout
    )

    cancelled = await asyncio.to_thread(
        run_schedules, kube_plane, namespace, "cancel", f"{namespace}/deploy/cancelled", "--by", "ops@laptop"
    )
    assert cancelled.returncode == 0, cancelled.stderr
    assert "requested by ops@laptop" in cancelled.stdout
    await asyncio.gather(a.tick(), b.tick())
    await asyncio.gather(a.tick(), b.tick())
    [stopped] = a.follow_up_notices() + b.follow_up_notices()
    assert "stopped (cancelled) after 0 restart(s)" in stopped.summary and "ops@laptop" in stopped.detail
    clock.advance(600)
    await asyncio.gather(a.tick(), b.tick())
    assert await restarts_in_ledger(kube_api, namespace, "cancelled") == []

    again = await asyncio.to_thread(
        run_schedules, kube_plane, namespace, "cancel", f"{namespace}/Deployment/cancelled"
    )
    assert again.returncode == 1 and "no running restart schedule" in again.stderr
    unknown = await asyncio.to_thread(
        run_schedules, kube_plane, namespace, "cancel", f"{namespace}/Deployment/none"
    )
    assert unknown.returncode == 1 and "no follow-up" in unknown.stderr


async def test_a_verdict_whose_ledger_entry_was_edited_away_says_it_is_not_noted(
    replicas: Callable[..., Awaitable[Replica]], namespace: str, kube_api: k8s.ApiClient
) -> None:
    clock = clock_of(replicas)
    a = await replicas()
    created = await deployment(kube_api, namespace, "edited-ledger")
    await track(a, created, clock)
    # Someone edits the ledger by hand: the mitigation's entry becomes unreadable (a string for a time).
    broken = json.dumps(
        [{"action": "raise_memory", "playbook": "p", "occurrence": INCIDENT, "at": "yesterday", "by": "x"}]
    )
    await k8s.AppsV1Api(kube_api).patch_namespaced_deployment(
        "edited-ledger", namespace, {"metadata": {"annotations": {ledgers.ANNOTATION: broken}}}
    )
    clock.advance(3600)
    await a.tick()
    [verdict] = a.follow_up_notices()
    assert "1h verdict" in verdict.summary and "stable" in verdict.summary
    assert "Not noted in the ledger" in verdict.detail and "edited by hand" in verdict.detail
    workload = await read_deployment(kube_api, namespace, "edited-ledger")
    assert workload["metadata"]["annotations"][ledgers.ANNOTATION] == broken  # left as it was
