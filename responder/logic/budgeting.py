"""The cluster-wide guardrails' arithmetic: the global budget, the blast-radius breaker, the pause switch. Pure.

Stage: guard. Every change to the cluster-wide state object (`models.cluster_state.ClusterState`) is computed
here from the state, the settings and the time; `responder.kube.state` applies it by compare-and-swap, and
`responder.logic.guarding.guard` asks `check_cluster` as its last two checks. Nothing here reads the clock,
the environment or the cluster.
"""

from __future__ import annotations

import datetime

from responder.models import cluster_state, decisions, settings

__all__ = [
    "available_tokens",
    "check_cluster",
    "close_breaker",
    "describe_transition",
    "is_breaker_open",
    "note_workload",
    "paused_block",
    "refill",
    "reserve",
    "return_token",
    "set_paused",
    "take_token",
]


# --- global budget (token bucket shared by every replica) -----------------------------------------------------


def available_tokens(
    cluster: cluster_state.ClusterState, *, now: datetime.datetime, settings: settings.Settings
) -> float:
    """Tokens in the global bucket at `now`: it refills at mutations/window per second up to `mutations`."""
    budget = settings.guardrails.budget
    capacity = float(budget.mutations)
    if cluster.budget_tokens is None or cluster.budget_refilled_at is None:
        return capacity
    # Replicas' clocks differ a little: time never runs backwards for the bucket.
    elapsed = max(0.0, (now - cluster.budget_refilled_at).total_seconds())
    return min(capacity, cluster.budget_tokens + elapsed * capacity / budget.window_seconds)


def refill(
    cluster: cluster_state.ClusterState, *, now: datetime.datetime, settings: settings.Settings
) -> cluster_state.ClusterState:
    refilled_at = now if cluster.budget_refilled_at is None else max(now, cluster.budget_refilled_at)
    tokens = available_tokens(cluster, now=now, settings=settings)
    return cluster.model_copy(update={"budget_tokens": tokens, "budget_refilled_at": refilled_at})


def take_token(
    cluster: cluster_state.ClusterState, *, now: datetime.datetime, settings: settings.Settings
) -> cluster_state.ClusterState | None:
    """The state with one token spent, or None when the bucket holds less than one."""
    refilled = refill(cluster, now=now, settings=settings)
    assert refilled.budget_tokens is not None
    if refilled.budget_tokens < 1.0:
        return None
    return refilled.model_copy(update={"budget_tokens": refilled.budget_tokens - 1.0})


def return_token(
    cluster: cluster_state.ClusterState, *, now: datetime.datetime, settings: settings.Settings
) -> cluster_state.ClusterState:
    """Give back a token whose write did not happen (a 409: another replica had already acted)."""
    refilled = refill(cluster, now=now, settings=settings)
    assert refilled.budget_tokens is not None
    capacity = float(settings.guardrails.budget.mutations)
    return refilled.model_copy(update={"budget_tokens": min(capacity, refilled.budget_tokens + 1.0)})


# --- blast-radius breaker -------------------------------------------------------------------------------------


def _is_quiet(
    cluster: cluster_state.ClusterState, *, now: datetime.datetime, settings: settings.Settings
) -> bool:
    last = cluster.last_new_workload_at
    quiet = settings.guardrails.blast_radius.quiet_seconds
    return last is None or (now - last).total_seconds() >= quiet


def is_breaker_open(
    cluster: cluster_state.ClusterState, *, now: datetime.datetime, settings: settings.Settings
) -> bool:
    """Open, and no quiet period has passed since the last new workload started alerting.

    A breaker whose quiet period has passed reads as closed; the next `note_workload` records the closing,
    so that exactly one replica announces it.
    """
    return cluster.breaker_open and not _is_quiet(cluster, now=now, settings=settings)


def close_breaker(
    cluster: cluster_state.ClusterState, *, now: datetime.datetime
) -> cluster_state.ClusterState:
    """Closed, with an empty window: counting starts afresh (else the next alert would re-open it at once)."""
    return cluster.model_copy(
        update={"breaker_open": False, "breaker_since": now, "workloads": {}, "last_new_workload_at": None}
    )


def note_workload(
    cluster: cluster_state.ClusterState,
    *,
    key: str,
    now: datetime.datetime,
    settings: settings.Settings,
) -> tuple[cluster_state.ClusterState, cluster_state.BreakerTransition | None]:
    """Record that workload `key` is alerting; returns the new state and the breaker's transition, if any."""
    blast = settings.guardrails.blast_radius
    transition: cluster_state.BreakerTransition | None = None
    if cluster.breaker_open and _is_quiet(cluster, now=now, settings=settings):
        cluster = close_breaker(cluster, now=now)
        transition = cluster_state.BreakerTransition.CLOSED
    elif cluster.breaker_close_unannounced and not cluster.breaker_open:
        # Closed by `resume` in another process (the CLI), which notifies nobody: said here, once.
        cluster = cluster.model_copy(update={"breaker_close_unannounced": False})
        transition = cluster_state.BreakerTransition.CLOSED
    horizon = now - datetime.timedelta(seconds=blast.window_seconds)
    workloads = {name: seen for name, seen in cluster.workloads.items() if seen > horizon}
    last_new = cluster.last_new_workload_at
    if key not in workloads:
        workloads[key] = now
        last_new = now if last_new is None else max(now, last_new)
        if len(workloads) > cluster_state.MAX_TRACKED_WORKLOADS:
            newest = sorted(workloads.items(), key=lambda item: item[1])[
                -cluster_state.MAX_TRACKED_WORKLOADS :
            ]
            workloads = dict(newest)
    update: dict[str, object] = {"workloads": workloads, "last_new_workload_at": last_new}
    if not cluster.breaker_open and len(workloads) > blast.max_workloads:
        update |= {"breaker_open": True, "breaker_since": now}
        transition = cluster_state.BreakerTransition.OPENED
    return cluster.model_copy(update=update), transition


# --- pause switch ---------------------------------------------------------------------------------------------


def set_paused(
    cluster: cluster_state.ClusterState, *, paused: bool, by: str, now: datetime.datetime
) -> cluster_state.ClusterState:
    state = cluster.model_copy(update={"paused": paused, "paused_by": by, "paused_at": now})
    if not paused and state.breaker_open:
        # `oom-responder resume` also closes the breaker: a person has looked. A replica announces it.
        state = close_breaker(state, now=now).model_copy(update={"breaker_close_unannounced": True})
    return state


def describe_transition(transition: cluster_state.BreakerTransition, *, settings: settings.Settings) -> str:
    """What the breaker's change means for the humans reading the notice, and what `resume` would do."""
    blast = settings.guardrails.blast_radius
    if transition is cluster_state.BreakerTransition.OPENED:
        return (
            f"more than {blast.max_workloads} workloads started alerting within {blast.window_seconds:g}s: no "
            f"replica writes anything until {blast.quiet_seconds:g}s pass without a new one. `oom-responder "
            f"resume` closes it now and counts afresh: up to {blast.max_workloads} more alerting workloads may "
            f"then be mitigated before it opens again, so look at the cause first."
        )
    return (
        f"mitigations are allowed again; the breaker opens again when more than {blast.max_workloads} workloads "
        f"start alerting within {blast.window_seconds:g}s."
    )


# --- blocks ---------------------------------------------------------------------------------------------------


def _block(guardrail: decisions.Guardrail, detail: str) -> decisions.Decision:
    return decisions.Decision.block(guardrail, detail)


def check_cluster(
    cluster: cluster_state.ClusterState, *, now: datetime.datetime, settings: settings.Settings
) -> decisions.Decision | None:
    if is_breaker_open(cluster, now=now, settings=settings):
        count = len(cluster.workloads)
        return _block(
            decisions.Guardrail.BLAST_RADIUS,
            f"blast-radius breaker open since {_when(cluster.breaker_since)}: {count} workloads alerting "
            f"(more than {settings.guardrails.blast_radius.max_workloads} within "
            f"{settings.guardrails.blast_radius.window_seconds:g}s); it closes after "
            f"{settings.guardrails.blast_radius.quiet_seconds:g}s without new ones or on `oom-responder resume`",
        )
    if available_tokens(cluster, now=now, settings=settings) < 1.0:
        budget = settings.guardrails.budget
        return _block(
            decisions.Guardrail.BUDGET,
            f"global budget of {budget.mutations} mutations per {budget.window_seconds:g}s is spent",
        )
    return None


def _when(moment: datetime.datetime | None) -> str:
    return moment.isoformat() if moment is not None else "an unknown time"


def paused_block(cluster: cluster_state.ClusterState) -> decisions.Decision:
    return _block(
        decisions.Guardrail.PAUSED,
        f"paused by {cluster.paused_by or 'someone'} at {_when(cluster.paused_at)}; `oom-responder resume` "
        f"allows mutations again",
    )


def reserve(
    cluster: cluster_state.ClusterState, *, now: datetime.datetime, settings: settings.Settings
) -> tuple[cluster_state.ClusterState | None, decisions.Decision]:
    """The last check right before a write, on the freshest state: pause, breaker, then take a budget token.

    Returns the new state to store (None when blocked) and the decision. `responder.kube.state` runs it
    inside compare-and-swap, so two replicas can never spend the same token.
    """
    if cluster.paused:
        return None, paused_block(cluster)
    blocked = check_cluster(cluster, now=now, settings=settings)
    if blocked is not None:
        return None, blocked
    taken = take_token(cluster, now=now, settings=settings)
    if taken is None:  # pragma: no cover - _check_cluster saw at least one token at the same instant
        return None, _block(decisions.Guardrail.BUDGET, "global budget is spent")
    return taken, decisions.Decision.allow()


def count_and_reserve(
    cluster: cluster_state.ClusterState, *, key: str, now: datetime.datetime, settings: settings.Settings
) -> tuple[cluster_state.ClusterState, decisions.Decision, cluster_state.BreakerTransition | None]:
    """Count workload `key` in the blast radius, then `reserve` on the state that leaves: one state write for
    both. The workload that crosses the breaker's line opens it and is refused by it, as when counted first.

    Returns the state to store (the count is kept even when the reservation is refused), the reservation's
    decision and the breaker's transition, if any."""
    counted, transition = note_workload(cluster, key=key, now=now, settings=settings)
    reserved, decision = reserve(counted, now=now, settings=settings)
    return (reserved if reserved is not None else counted), decision, transition
