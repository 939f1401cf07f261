"""The cluster-wide state object read strictly: a hand-edited or damaged ConfigMap never raises and never
loosens a guardrail; it reads as paused, saying what is wrong.

Covers: a time without a zone (it used to raise TypeError in the guard on every mutating alert); NaN,
infinite and negative budget tokens (NaN used to refill the budget); malformed JSON, nesting past the parser's
depth and an object over the size bound (refused before parsing). Each reads as paused with the problem in
`paused_by`, and the guard then blocks every mutation as `paused` with that reason in its detail, for every
step of the guard (guard, reserve, note_workload) without an exception. A state the service wrote itself
round-trips unchanged.
"""

from __future__ import annotations

import datetime
import json

import pytest

from responder.logic import budgeting, guarding
from responder.models import cluster_state, decisions, settings, targets

NOW = datetime.datetime(2026, 3, 1, 12, tzinfo=datetime.UTC)
GOOD = cluster_state.ClusterState(
    budget_tokens=3.0,
    budget_refilled_at=NOW,
    workloads={"shop/Deployment/api": NOW},
    last_new_workload_at=NOW,
)


def _edited(**changes: object) -> str:
    data = json.loads(GOOD.to_json())
    data.update(changes)
    return json.dumps(data)


DAMAGED = [
    pytest.param(_edited(budget_refilled_at="2026-03-01T11:00:00"), "budget_refilled_at", id="naive-time"),
    pytest.param(
        _edited(workloads={"shop/Deployment/api": "2026-03-01T11:00:00"}), "workloads", id="naive-window"
    ),
    pytest.param(
        GOOD.to_json().replace('"budget_tokens":3.0', '"budget_tokens":NaN'), "budget_tokens", id="nan"
    ),
    pytest.param(
        GOOD.to_json().replace('"budget_tokens":3.0', '"budget_tokens":Infinity'), "budget_tokens", id="inf"
    ),
    pytest.param(_edited(budget_tokens=-5), "budget_tokens", id="negative-tokens"),
    pytest.param('{"budget_tokens": "many"', "Invalid JSON", id="malformed"),
    pytest.param('{"workloads":' * 300 + "{}" + "}" * 300, "recursion limit", id="nested-300-deep"),
    pytest.param(
        json.dumps({"workloads": {f"ns/Deployment/w{n}": NOW.isoformat() for n in range(20_000)}}),
        "bytes, over the",
        id="over-the-size-bound",
    ),
]


@pytest.mark.parametrize(("raw", "why"), DAMAGED)
def test_a_damaged_state_object_reads_as_paused_saying_why(raw: str, why: str) -> None:
    state = cluster_state.ClusterState.from_json(raw)
    assert state.paused
    assert state.paused_by is not None
    assert state.paused_by.startswith("the service: the state object (state.json) is unreadable: ")
    assert why in state.paused_by


@pytest.mark.parametrize(("raw", "why"), DAMAGED)
def test_the_guard_blocks_on_a_damaged_state_object_without_raising(raw: str, why: str) -> None:
    config = settings.Settings()
    state = cluster_state.ClusterState.from_json(raw)
    target = targets.Target(targets.WorkloadKind.DEPLOYMENT, "shop", "api")
    plan = decisions.Plan(
        playbook="oom-raise-memory",
        action=settings.Action.SCALE_OUT,
        target=target,
        occurrence_id="f@x",
        from_amount=1,
        to_amount=2,
    )
    snapshot = cluster_state.TargetSnapshot.from_annotations(
        namespace="shop", annotations={}, own_namespace="ops"
    )
    decision = guarding.guard(plan=plan, snapshot=snapshot, cluster=state, settings=config, now=NOW)
    assert decision.guardrail is decisions.Guardrail.PAUSED
    assert why in decision.detail
    _, reserved = budgeting.reserve(state, now=NOW, settings=config)
    assert not reserved.allowed and reserved.guardrail is decisions.Guardrail.PAUSED
    budgeting.note_workload(state, key=target.key, now=NOW, settings=config)


def test_a_state_the_service_wrote_round_trips() -> None:
    assert cluster_state.ClusterState.from_json(GOOD.to_json()) == GOOD
    assert not cluster_state.ClusterState.from_json(None).paused
