"""The cluster-wide state object (`responder.kube.state.StateStore`), over an in-memory API.

Aspects covered:

* the first reservation creates the object; each takes one token, and a spent budget refuses;
* two replicas racing on the object both succeed, one after re-reading on 409, and spend two tokens in
  total (never the same one twice);
* a returned token is put back; pausing and resuming are recorded with who did it;
* blast-radius counts ride on reservations: those that waited for a turn are written together, and the
  breaker opens exactly once, at the workload that crosses the line.
"""

from __future__ import annotations

import asyncio
import datetime
import json

from responder.kube import state
from responder.models import cluster_state, decisions, settings, targets
from tests.unit import fakeapi

NOW = datetime.datetime(2026, 3, 1, 12, tzinfo=datetime.UTC)
PATH = "/api/v1/namespaces/responder/configmaps/oom-responder-state"


def _config(mutations: int = 20) -> settings.Settings:
    return settings.Settings.model_validate({"guardrails": {"budget": {"mutations": mutations}}})


def _tokens(api: fakeapi.FakeApi) -> float:
    return float(json.loads(api.objects[PATH]["data"]["state.json"])["budget_tokens"])


async def test_reservations_create_the_object_take_one_token_each_and_stop_when_spent() -> None:
    api = fakeapi.FakeApi()
    store = state.StateStore(fakeapi.kube_on(api), namespace="responder", settings=_config(mutations=2))

    first = await store.reserve(now=NOW)
    second = await store.reserve(now=NOW)
    third = await store.reserve(now=NOW)

    assert first.allowed and second.allowed
    assert (third.allowed, third.guardrail) == (False, decisions.Guardrail.BUDGET)
    assert _tokens(api) == 0.0


async def test_two_replicas_racing_spend_two_tokens_in_total() -> None:
    api = fakeapi.FakeApi()
    one = state.StateStore(fakeapi.kube_on(api), namespace="responder", settings=_config())
    two = state.StateStore(fakeapi.kube_on(api), namespace="responder", settings=_config())
    await one.read()
    await two.read()
    await one.reserve(now=NOW)  # `two` now holds a stale resourceVersion

    answers = await asyncio.gather(two.reserve(now=NOW), one.reserve(now=NOW))

    assert all(answer.allowed for answer in answers)
    assert _tokens(api) == 17.0
    # `two` still believed there was no object: its create lost (409 AlreadyExists), it read again and won.
    assert [r.method for r in api.requests[2:]] == ["POST", "POST", "PUT", "GET", "PUT"]


async def test_a_returned_token_is_put_back_and_pause_and_resume_say_who() -> None:
    api = fakeapi.FakeApi()
    store = state.StateStore(fakeapi.kube_on(api), namespace="responder", settings=_config())
    await store.reserve(now=NOW)
    await store.return_budget(now=NOW)
    assert _tokens(api) == 20.0

    paused = await store.set_paused(True, by="alice", now=NOW)
    assert (paused.paused, paused.paused_by) == (True, "alice")
    resumed = await store.resume(by="bob", now=NOW)
    assert (resumed.paused, resumed.paused_by) == (False, "bob")


async def test_counts_ride_on_reservations_written_together_and_the_breaker_opens_once() -> None:
    api = fakeapi.FakeApi(suspends=True)
    config = settings.Settings.model_validate(
        {"guardrails": {"blast_radius": {"max_workloads": 5, "window_seconds": 600}}}
    )
    store = state.StateStore(fakeapi.kube_on(api), namespace="responder", settings=config)
    workloads = [
        targets.Target(kind=targets.WorkloadKind.DEPLOYMENT, namespace="shop", name=f"app-{i}")
        for i in range(12)
    ]

    answers = await asyncio.gather(*(store.count_and_reserve(w, now=NOW) for w in workloads))

    assert [decision.allowed for decision, _ in answers] == [True] * 5 + [False] * 7
    assert [transition for _, transition in answers].count(cluster_state.BreakerTransition.OPENED) == 1
    stored = json.loads(api.objects[PATH]["data"]["state.json"])
    assert stored["breaker_open"] is True and len(stored["workloads"]) == 12
    # The first creates the object; the eleven that waited behind it are counted and refused in one write.
    assert [r.method for r in api.requests] == ["GET", "POST", "PUT"]
