"""The cluster-wide guardrail arithmetic (`responder.logic.budgeting`): counting a workload with its reservation.

Aspects covered:

* counted and reserved in one state: the workload is in the blast-radius window and one token is spent;
* the workload that crosses the breaker's line opens it and is refused by it; its count is kept;
* a workload already counted adds nothing to the window, and a spent budget keeps the count.
"""

from __future__ import annotations

import datetime

from responder.logic import budgeting
from responder.models import cluster_state, decisions, settings

NOW = datetime.datetime(2026, 3, 1, 12, tzinfo=datetime.UTC)


def _config(*, max_workloads: int = 10, mutations: int = 20) -> settings.Settings:
    return settings.Settings.model_validate(
        {
            "guardrails": {
                "budget": {"mutations": mutations},
                "blast_radius": {"max_workloads": max_workloads, "window_seconds": 300},
            }
        }
    )


def test_a_reservation_counts_its_workload_and_spends_one_token() -> None:
    config = _config()
    state = budgeting.refill(cluster_state.ClusterState(), now=NOW, settings=config)

    after, decision, transition = budgeting.count_and_reserve(
        state, key="shop/Deployment/web", now=NOW, settings=config
    )

    assert decision.allowed and transition is None
    assert set(after.workloads) == {"shop/Deployment/web"}
    assert after.budget_tokens == state.budget_tokens - 1


def test_the_workload_that_crosses_the_line_opens_the_breaker_and_is_refused_by_it() -> None:
    config = _config(max_workloads=2)
    state = budgeting.refill(cluster_state.ClusterState(), now=NOW, settings=config)
    answers = []
    for name in ("a", "b", "c", "d"):
        state, decision, transition = budgeting.count_and_reserve(
            state, key=f"shop/Deployment/{name}", now=NOW, settings=config
        )
        answers.append((decision.allowed, decision.guardrail, transition))

    assert answers == [
        (True, None, None),
        (True, None, None),
        (False, decisions.Guardrail.BLAST_RADIUS, cluster_state.BreakerTransition.OPENED),
        (False, decisions.Guardrail.BLAST_RADIUS, None),
    ]
    assert len(state.workloads) == 4 and state.breaker_open


def test_a_counted_workload_is_counted_once_and_a_spent_budget_keeps_the_count() -> None:
    config = _config(mutations=1)
    state = budgeting.refill(cluster_state.ClusterState(), now=NOW, settings=config)
    state, first, _ = budgeting.count_and_reserve(state, key="shop/Deployment/web", now=NOW, settings=config)
    state, second, _ = budgeting.count_and_reserve(state, key="shop/Deployment/web", now=NOW, settings=config)
    state, third, _ = budgeting.count_and_reserve(state, key="shop/Deployment/api", now=NOW, settings=config)

    assert first.allowed
    assert (second.allowed, second.guardrail) == (False, decisions.Guardrail.BUDGET)
    assert (third.allowed, third.guardrail) == (False, decisions.Guardrail.BUDGET)
    assert set(state.workloads) == {"shop/Deployment/web", "shop/Deployment/api"}
