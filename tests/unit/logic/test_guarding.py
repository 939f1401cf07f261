"""The guard stage, `responder.logic.guarding`: pure decisions over a plan, a workload snapshot and cluster state.

Aspects covered:
* every guardrail blocks on its own and names itself: paused, namespace (include, exclude, own namespace),
  opt-in and opt-out annotation, ceilings (global, playbook, annotation, unparsable annotation), single step,
  cooldown per action, per-target cap, blast-radius breaker, global budget;
* the order in which they are checked when several apply;
* escalations and diagnostics are not writes: only the namespace and opt-out policy applies;
* the helpers planning uses: ceilings and clamping;
* the token bucket (refill, take, give back, clocks that disagree) and `reserve` on the freshest state;
* the breaker's window, its single opening and closing transitions, the quiet period and `resume`;
* the state object's JSON, including a damaged one reading as paused;
* properties: the ceiling is never exceeded; never more writes than the budget allows in any interval; the
  breaker's transitions alternate and it opens exactly when too many distinct workloads alert.
"""

from __future__ import annotations

import datetime
import itertools

import hypothesis
import pytest
from hypothesis import strategies as st

from responder.logic import budgeting, guarding
from responder.models import cluster_state, decisions, ledgers, settings, targets

T0 = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.UTC)
Mi = 2**20
Gi = 2**30
Action = settings.Action
Guardrail = decisions.Guardrail


def at(seconds: float) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


def make_settings(**guardrails: object) -> settings.Settings:
    return settings.Settings.model_validate({"guardrails": guardrails})


def make_plan(
    action: settings.Action = Action.RAISE_MEMORY,
    *,
    from_amount: int | None = 512 * Mi,
    to_amount: int | None = 640 * Mi,
    namespace: str = "shop",
    playbook: str = "oom-raise-memory",
) -> decisions.Plan:
    return decisions.Plan(
        playbook=playbook,
        action=action,
        target=targets.Target(targets.WorkloadKind.DEPLOYMENT, namespace, "cart"),
        occurrence_id="abc@2024-05-01T11:59:00Z",
        container="app",
        from_amount=from_amount,
        to_amount=to_amount,
    )


def entry(
    action: settings.Action, seconds: float, result: decisions.Outcome = decisions.Outcome.DONE
) -> ledgers.LedgerEntry:
    return ledgers.LedgerEntry(
        action=action,
        playbook="oom-raise-memory",
        occurrence=f"o{seconds}",
        at=at(seconds),
        by="r1",
        result=result,
    )


def make_snapshot(
    *,
    namespace: str = "shop",
    annotations: dict[str, str] | None = None,
    ledger: list[ledgers.LedgerEntry] | None = None,
    own_namespace: str = "oom-responder",
) -> cluster_state.TargetSnapshot:
    return cluster_state.TargetSnapshot(
        namespace=namespace, annotations=annotations or {}, ledger=ledger or [], own_namespace=own_namespace
    )


def run_guard(
    plan: decisions.Plan | None = None,
    *,
    snapshot: cluster_state.TargetSnapshot | None = None,
    cluster: cluster_state.ClusterState | None = None,
    config: settings.Settings | None = None,
    now: datetime.datetime = T0,
) -> decisions.Decision:
    return guarding.guard(
        plan=plan or make_plan(),
        snapshot=snapshot or make_snapshot(),
        cluster=cluster or cluster_state.ClusterState(),
        settings=config or make_settings(),
        now=now,
    )


# --- allowed --------------------------------------------------------------------------------------------------


def test_allows_a_plain_raise_with_default_settings() -> None:
    decision = run_guard()
    assert decision.allowed
    assert decision.reason is decisions.Reason.ALLOWED
    assert decision.guardrail is None


@pytest.mark.parametrize(
    "action", [Action.EVICT_POD, Action.ROLLOUT_RESTART], ids=["evict_pod", "rollout_restart"]
)
def test_allows_actions_without_amounts(action: settings.Action) -> None:
    assert run_guard(make_plan(action, from_amount=None, to_amount=None)).allowed


# --- pause ----------------------------------------------------------------------------------------------------


def test_blocks_every_write_while_paused_and_names_who_paused() -> None:
    cluster = cluster_state.ClusterState(paused=True, paused_by="alice", paused_at=T0)
    decision = run_guard(cluster=cluster)
    assert not decision.allowed
    assert decision.reason is decisions.Reason.GUARDRAIL
    assert decision.guardrail is Guardrail.PAUSED
    assert "alice" in decision.detail


def test_pause_is_checked_before_everything_else() -> None:
    cluster = cluster_state.ClusterState(paused=True, budget_tokens=0.0, budget_refilled_at=T0)
    snapshot = make_snapshot(namespace="kube-system", annotations={cluster_state.ENABLED_ANNOTATION: "false"})
    assert run_guard(snapshot=snapshot, cluster=cluster).guardrail is Guardrail.PAUSED


@pytest.mark.parametrize(
    "action", [Action.ESCALATE, Action.CAPTURE_DIAGNOSTICS], ids=["escalate", "capture_diagnostics"]
)
def test_pause_breaker_and_budget_do_not_stop_escalations_or_diagnostics(action: settings.Action) -> None:
    cluster = cluster_state.ClusterState(
        paused=True,
        breaker_open=True,
        last_new_workload_at=T0,
        budget_tokens=0.0,
        budget_refilled_at=T0,
    )
    assert run_guard(make_plan(action, from_amount=None, to_amount=None), cluster=cluster).allowed


@pytest.mark.parametrize(
    "action", [Action.ESCALATE, Action.CAPTURE_DIAGNOSTICS], ids=["escalate", "capture_diagnostics"]
)
def test_escalations_still_respect_namespace_and_opt_out(action: settings.Action) -> None:
    plan = make_plan(action, from_amount=None, to_amount=None)
    assert run_guard(plan, snapshot=make_snapshot(namespace="kube-system")).guardrail is Guardrail.NAMESPACE
    opted_out = make_snapshot(annotations={cluster_state.ENABLED_ANNOTATION: "false"})
    assert run_guard(plan, snapshot=opted_out).guardrail is Guardrail.OPT_OUT


# --- namespaces -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("namespace", "include", "exclude", "own", "allowed"),
    [
        pytest.param("shop", ["*"], [], False, True, id="include-all"),
        pytest.param("shop", ["team-*"], [], False, False, id="not-included"),
        pytest.param("team-a", ["team-*"], [], False, True, id="included-by-glob"),
        pytest.param("team-a", ["*"], ["team-?"], False, False, id="excluded-by-glob"),
        pytest.param("team-a", ["team-a"], ["team-*"], False, False, id="exclude-wins-over-include"),
        pytest.param("kube-system", ["*"], ["kube-system"], False, False, id="kube-system"),
        pytest.param("oom-responder", ["*"], [], False, False, id="own-namespace-excluded"),
        pytest.param("oom-responder", ["*"], [], True, True, id="own-namespace-allowed-when-configured"),
        pytest.param("oom-responder", ["*"], ["oom-*"], True, False, id="own-namespace-still-excludable"),
    ],
)
def test_namespace_policy(
    namespace: str, include: list[str], exclude: list[str], own: bool, allowed: bool
) -> None:
    config = make_settings(namespaces_include=include, namespaces_exclude=exclude, act_in_own_namespace=own)
    decision = run_guard(
        make_plan(namespace=namespace), snapshot=make_snapshot(namespace=namespace), config=config
    )
    assert decision.allowed is allowed
    if not allowed:
        assert decision.guardrail is Guardrail.NAMESPACE
        assert namespace in decision.detail


def test_own_namespace_block_says_why() -> None:
    decision = run_guard(snapshot=make_snapshot(namespace="oom-responder"))
    assert "act_in_own_namespace" in decision.detail


def test_namespace_is_checked_before_opt_out() -> None:
    snapshot = make_snapshot(namespace="kube-system", annotations={cluster_state.ENABLED_ANNOTATION: "false"})
    assert run_guard(snapshot=snapshot).guardrail is Guardrail.NAMESPACE


# --- opt-in and opt-out ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("opt_in", "annotation", "allowed"),
    [
        pytest.param(False, None, True, id="opt-out-mode-unannotated"),
        pytest.param(False, "true", True, id="opt-out-mode-true"),
        pytest.param(False, "false", False, id="opt-out-mode-false"),
        pytest.param(False, "False", False, id="opt-out-mode-False"),
        pytest.param(False, "flase", False, id="opt-out-mode-typo-is-safe-side"),
        pytest.param(True, None, False, id="opt-in-mode-unannotated"),
        pytest.param(True, "true", True, id="opt-in-mode-true"),
        pytest.param(True, " TRUE ", True, id="opt-in-mode-true-any-case"),
        pytest.param(True, "yes", True, id="opt-in-mode-yes"),
        pytest.param(True, "false", False, id="opt-in-mode-false"),
    ],
)
def test_opt_in_and_opt_out_annotation(opt_in: bool, annotation: str | None, allowed: bool) -> None:
    annotations = {} if annotation is None else {cluster_state.ENABLED_ANNOTATION: annotation}
    decision = run_guard(snapshot=make_snapshot(annotations=annotations), config=make_settings(opt_in=opt_in))
    assert decision.allowed is allowed
    if not allowed:
        assert decision.guardrail is Guardrail.OPT_OUT
        assert cluster_state.ENABLED_ANNOTATION in decision.detail


# --- ceilings -------------------------------------------------------------------------------------------------


def test_blocks_a_raise_above_the_global_memory_ceiling() -> None:
    decision = run_guard(
        make_plan(from_amount=900 * Mi, to_amount=1100 * Mi), config=make_settings(max_memory="1Gi")
    )
    assert decision.guardrail is Guardrail.CEILING
    assert "1Gi" in decision.detail
    assert "guardrails.max_memory" in decision.detail


def test_allows_a_raise_exactly_at_the_ceiling() -> None:
    assert run_guard(
        make_plan(from_amount=900 * Mi, to_amount=Gi), config=make_settings(max_memory="1Gi")
    ).allowed


def test_the_workload_annotation_lowers_the_memory_ceiling() -> None:
    snapshot = make_snapshot(annotations={cluster_state.MAX_MEMORY_ANNOTATION: "600Mi"})
    decision = run_guard(make_plan(from_amount=512 * Mi, to_amount=640 * Mi), snapshot=snapshot)
    assert decision.guardrail is Guardrail.CEILING
    assert cluster_state.MAX_MEMORY_ANNOTATION in decision.detail


def test_an_annotation_cannot_raise_the_global_ceiling() -> None:
    snapshot = make_snapshot(annotations={cluster_state.MAX_MEMORY_ANNOTATION: "64Gi"})
    config = make_settings(max_memory="1Gi")
    decision = run_guard(
        make_plan(from_amount=900 * Mi, to_amount=1100 * Mi), snapshot=snapshot, config=config
    )
    assert decision.guardrail is Guardrail.CEILING
    assert "guardrails.max_memory" in decision.detail


def test_an_unparsable_ceiling_annotation_blocks_rather_than_being_ignored() -> None:
    snapshot = make_snapshot(annotations={cluster_state.MAX_MEMORY_ANNOTATION: "lots"})
    decision = run_guard(snapshot=snapshot)
    assert decision.guardrail is Guardrail.CEILING
    assert "unparsable" in decision.detail


def test_the_playbook_maximum_lowers_the_ceiling() -> None:
    config = settings.Settings.model_validate(
        {
            "playbooks": [
                {
                    "name": "oom-raise-memory",
                    "alerts": ["oom_killed"],
                    "actions": [{"raise_memory": {"max": "600Mi"}}],
                }
            ]
        }
    )
    decision = run_guard(make_plan(from_amount=512 * Mi, to_amount=640 * Mi), config=config)
    assert decision.guardrail is Guardrail.CEILING
    assert "playbook oom-raise-memory" in decision.detail


@pytest.mark.parametrize(
    ("annotations", "to_replicas", "guardrail"),
    [
        pytest.param({}, 50, None, id="at-global-ceiling"),
        pytest.param({}, 51, Guardrail.CEILING, id="above-global-ceiling"),
        pytest.param({cluster_state.MAX_REPLICAS_ANNOTATION: "4"}, 4, None, id="at-annotation"),
        pytest.param(
            {cluster_state.MAX_REPLICAS_ANNOTATION: "4"}, 5, Guardrail.CEILING, id="above-annotation"
        ),
        pytest.param(
            {cluster_state.MAX_REPLICAS_ANNOTATION: "-1"}, 1, Guardrail.CEILING, id="negative-annotation"
        ),
        pytest.param(
            {cluster_state.MAX_REPLICAS_ANNOTATION: "four"}, 1, Guardrail.CEILING, id="bad-annotation"
        ),
    ],
)
def test_replica_ceilings(annotations: dict[str, str], to_replicas: int, guardrail: Guardrail | None) -> None:
    plan = make_plan(Action.SCALE_OUT, from_amount=3, to_amount=to_replicas, playbook="memory-high-scale-out")
    decision = run_guard(plan, snapshot=make_snapshot(annotations=annotations))
    assert decision.guardrail is guardrail
    assert decision.allowed is (guardrail is None)


def test_a_plan_without_an_amount_is_checked_from_its_readable_value() -> None:
    plan = decisions.Plan(
        playbook="oom-raise-memory",
        action=Action.RAISE_MEMORY,
        target=targets.Target(targets.WorkloadKind.DEPLOYMENT, "shop", "cart"),
        occurrence_id="x",
        from_value="1Gi",
        to_value="2Gi",
    )
    assert run_guard(plan, config=make_settings(max_memory="1536Mi")).guardrail is Guardrail.CEILING
    assert run_guard(plan, config=make_settings(max_memory="2Gi")).allowed


def test_a_memory_plan_with_no_amount_at_all_is_blocked() -> None:
    decision = run_guard(make_plan(from_amount=None, to_amount=None))
    assert decision.guardrail is Guardrail.CEILING
    assert "no amount" in decision.detail


def test_ceiling_for_reports_the_lowest_source() -> None:
    config = make_settings(max_replicas=10)
    ceiling = guarding.ceiling_for(
        action=Action.SCALE_OUT,
        annotations={cluster_state.MAX_REPLICAS_ANNOTATION: "6"},
        settings=config,
        playbook="memory-high-scale-out",
    )
    assert ceiling == guarding.Ceiling(6, f"annotation {cluster_state.MAX_REPLICAS_ANNOTATION}")
    assert guarding.ceiling_for(action=Action.EVICT_POD, annotations={}, settings=config) is None


def test_clamp_amount_caps_at_the_ceiling_and_the_step() -> None:
    config = make_settings(max_memory="1Gi", max_memory_step_ratio=1.5)
    clamp = guarding.clamp_amount
    assert (
        clamp(
            action=Action.RAISE_MEMORY,
            from_amount=900 * Mi,
            to_amount=2 * Gi,
            annotations={},
            settings=config,
        )
        == Gi
    )
    assert (
        clamp(
            action=Action.RAISE_MEMORY,
            from_amount=64 * Mi,
            to_amount=164 * Mi,
            annotations={},
            settings=config,
        )
        == 96 * Mi
    )
    assert (
        clamp(
            action=Action.RAISE_MEMORY, from_amount=None, to_amount=100 * Mi, annotations={}, settings=config
        )
        == 100 * Mi
    )
    assert clamp(action=Action.SCALE_OUT, from_amount=49, to_amount=60, annotations={}, settings=config) == 50


# --- single step ----------------------------------------------------------------------------------------------


def test_blocks_a_raise_larger_than_the_maximum_step() -> None:
    decision = run_guard(
        make_plan(from_amount=256 * Mi, to_amount=600 * Mi), config=make_settings(max_memory_step_ratio=2)
    )
    assert decision.guardrail is Guardrail.STEP
    assert "×2" in decision.detail


def test_allows_a_raise_exactly_at_the_maximum_step() -> None:
    assert run_guard(
        make_plan(from_amount=256 * Mi, to_amount=512 * Mi), config=make_settings(max_memory_step_ratio=2)
    ).allowed


def test_a_first_limit_has_no_step_to_check() -> None:
    assert run_guard(make_plan(from_amount=None, to_amount=100 * Mi)).allowed


def test_ceiling_is_checked_before_step() -> None:
    config = make_settings(max_memory="1Gi", max_memory_step_ratio=2)
    assert (
        run_guard(make_plan(from_amount=256 * Mi, to_amount=2 * Gi), config=config).guardrail
        is Guardrail.CEILING
    )


# --- cooldown -------------------------------------------------------------------------------------------------


def test_blocks_second_bump_within_cooldown() -> None:
    snapshot = make_snapshot(ledger=[entry(Action.RAISE_MEMORY, 0)])
    decision = run_guard(snapshot=snapshot, now=at(1799))
    assert decision.guardrail is Guardrail.COOLDOWN
    assert "1s to go" in decision.detail


def test_allows_the_same_action_once_the_cooldown_has_passed() -> None:
    snapshot = make_snapshot(ledger=[entry(Action.RAISE_MEMORY, 0)])
    assert run_guard(snapshot=snapshot, now=at(1800)).allowed


def test_cooldown_is_per_action() -> None:
    snapshot = make_snapshot(ledger=[entry(Action.SCALE_OUT, 0)])
    assert run_guard(snapshot=snapshot, now=at(1)).allowed


def test_the_latest_entry_sets_the_cooldown() -> None:
    snapshot = make_snapshot(ledger=[entry(Action.RAISE_MEMORY, 0), entry(Action.RAISE_MEMORY, 1000)])
    assert run_guard(snapshot=snapshot, now=at(2000)).guardrail is Guardrail.COOLDOWN


@pytest.mark.parametrize(
    ("result", "counts"),
    [
        pytest.param(decisions.Outcome.DONE, True, id="done"),
        pytest.param(decisions.Outcome.FAILED, True, id="failed-still-counts"),
        pytest.param(decisions.Outcome.WOULD_DO, False, id="dry-run-does-not-count"),
        pytest.param(decisions.Outcome.BLOCKED, False, id="blocked-does-not-count"),
    ],
)
def test_which_ledger_results_start_a_cooldown(result: decisions.Outcome, counts: bool) -> None:
    snapshot = make_snapshot(ledger=[entry(Action.RAISE_MEMORY, 0, result)])
    assert (run_guard(snapshot=snapshot, now=at(10)).guardrail is Guardrail.COOLDOWN) is counts


def test_an_action_without_a_configured_cooldown_has_none() -> None:
    config = make_settings(cooldown_seconds={"raise_memory": 60})
    snapshot = make_snapshot(ledger=[entry(Action.EVICT_POD, 0)])
    plan = make_plan(Action.EVICT_POD, from_amount=None, to_amount=None)
    assert run_guard(plan, snapshot=snapshot, config=config, now=at(1)).allowed


# --- per-target cap -------------------------------------------------------------------------------------------


def test_cap_reached_blocks_with_cap_so_the_engine_escalates() -> None:
    ledger = [entry(Action.RAISE_MEMORY, 0), entry(Action.SCALE_OUT, 100), entry(Action.EVICT_POD, 200)]
    plan = make_plan(Action.ROLLOUT_RESTART, from_amount=None, to_amount=None)
    decision = run_guard(plan, snapshot=make_snapshot(ledger=ledger), now=at(300))
    assert decision.guardrail is Guardrail.CAP
    assert "humans" in decision.detail


def test_cap_counts_only_mutations_inside_its_window() -> None:
    ledger = [
        entry(Action.RAISE_MEMORY, 0),
        entry(Action.SCALE_OUT, 3000),
        entry(Action.ESCALATE, 3100),
        entry(Action.CAPTURE_DIAGNOSTICS, 3100),
    ]
    plan = make_plan(Action.ROLLOUT_RESTART, from_amount=None, to_amount=None)
    assert run_guard(plan, snapshot=make_snapshot(ledger=ledger), now=at(3700)).allowed


def test_cooldown_is_checked_before_cap() -> None:
    ledger = [entry(Action.RAISE_MEMORY, 0), entry(Action.SCALE_OUT, 1), entry(Action.RAISE_MEMORY, 2)]
    assert run_guard(snapshot=make_snapshot(ledger=ledger), now=at(3)).guardrail is Guardrail.COOLDOWN


# --- blast-radius breaker -------------------------------------------------------------------------------------


def test_blocks_while_the_breaker_is_open() -> None:
    cluster = cluster_state.ClusterState(breaker_open=True, breaker_since=T0, last_new_workload_at=T0)
    decision = run_guard(cluster=cluster, now=at(10))
    assert decision.guardrail is Guardrail.BLAST_RADIUS
    assert "resume" in decision.detail


def test_an_open_breaker_reads_as_closed_after_the_quiet_period() -> None:
    cluster = cluster_state.ClusterState(breaker_open=True, breaker_since=T0, last_new_workload_at=T0)
    assert run_guard(cluster=cluster, now=at(600)).allowed


def test_cap_is_checked_before_the_breaker() -> None:
    ledger = [entry(Action.SCALE_OUT, 0), entry(Action.EVICT_POD, 1), entry(Action.ROLLOUT_RESTART, 2)]
    cluster = cluster_state.ClusterState(breaker_open=True, last_new_workload_at=T0)
    assert (
        run_guard(snapshot=make_snapshot(ledger=ledger), cluster=cluster, now=at(3)).guardrail
        is Guardrail.CAP
    )


def test_breaker_opens_once_when_more_than_max_distinct_workloads_alert() -> None:
    config = make_settings(blast_radius={"max_workloads": 3, "window_seconds": 300})
    cluster = cluster_state.ClusterState()
    transitions = []
    for index, key in enumerate(["a", "b", "a", "c", "b", "d", "e", "f"]):
        cluster, transition = budgeting.note_workload(cluster, key=key, now=at(index), settings=config)
        transitions.append(transition)
    assert transitions == [None, None, None, None, None, cluster_state.BreakerTransition.OPENED, None, None]
    assert cluster.breaker_open
    assert cluster.breaker_since == at(5)
    assert cluster.last_new_workload_at == at(7)


def test_workloads_leave_the_window_after_window_seconds() -> None:
    config = make_settings(blast_radius={"max_workloads": 2, "window_seconds": 100})
    cluster = cluster_state.ClusterState()
    for index, key in enumerate(["a", "b"]):
        cluster, _ = budgeting.note_workload(cluster, key=key, now=at(index), settings=config)
    cluster, transition = budgeting.note_workload(cluster, key="c", now=at(100.5), settings=config)
    assert transition is None
    assert set(cluster.workloads) == {"b", "c"}


def test_a_known_workload_alerting_again_does_not_extend_the_quiet_period() -> None:
    config = make_settings(blast_radius={"max_workloads": 1, "window_seconds": 1000, "quiet_seconds": 50})
    cluster = cluster_state.ClusterState()
    cluster, _ = budgeting.note_workload(cluster, key="a", now=at(0), settings=config)
    cluster, opened = budgeting.note_workload(cluster, key="b", now=at(1), settings=config)
    assert opened is cluster_state.BreakerTransition.OPENED
    cluster, nothing = budgeting.note_workload(cluster, key="a", now=at(40), settings=config)
    assert nothing is None
    assert budgeting.is_breaker_open(cluster, now=at(50), settings=config)
    assert not budgeting.is_breaker_open(cluster, now=at(51), settings=config)


def test_breaker_closes_once_after_the_quiet_period_and_counting_starts_afresh() -> None:
    config = make_settings(blast_radius={"max_workloads": 1, "window_seconds": 1000, "quiet_seconds": 50})
    cluster = cluster_state.ClusterState()
    cluster, _ = budgeting.note_workload(cluster, key="a", now=at(0), settings=config)
    cluster, _ = budgeting.note_workload(cluster, key="b", now=at(1), settings=config)
    cluster, closed = budgeting.note_workload(cluster, key="c", now=at(60), settings=config)
    assert closed is cluster_state.BreakerTransition.CLOSED
    assert not cluster.breaker_open
    assert cluster.workloads == {"c": at(60)}
    cluster, again = budgeting.note_workload(cluster, key="c", now=at(61), settings=config)
    assert again is None


def test_resume_unpauses_and_closes_the_breaker() -> None:
    cluster = cluster_state.ClusterState(
        paused=True, breaker_open=True, workloads={"a": T0}, last_new_workload_at=T0
    )
    resumed = budgeting.set_paused(cluster, paused=False, by="bob", now=at(5))
    assert not resumed.paused
    assert resumed.paused_by == "bob"
    assert not resumed.breaker_open
    assert resumed.workloads == {}
    assert run_guard(cluster=resumed, now=at(6)).allowed


def test_pausing_leaves_the_breaker_alone() -> None:
    cluster = cluster_state.ClusterState(breaker_open=True, last_new_workload_at=T0)
    paused = budgeting.set_paused(cluster, paused=True, by="alice", now=at(1))
    assert paused.paused
    assert paused.breaker_open


def test_the_window_is_bounded() -> None:
    config = make_settings(blast_radius={"max_workloads": 5, "window_seconds": 10_000})
    cluster = cluster_state.ClusterState()
    for index in range(cluster_state.MAX_TRACKED_WORKLOADS + 10):
        cluster, _ = budgeting.note_workload(cluster, key=f"w{index}", now=at(index), settings=config)
    assert len(cluster.workloads) == cluster_state.MAX_TRACKED_WORKLOADS
    assert f"w{cluster_state.MAX_TRACKED_WORKLOADS + 9}" in cluster.workloads
    assert "w0" not in cluster.workloads


# --- global budget --------------------------------------------------------------------------------------------


def test_a_fresh_state_has_a_full_bucket() -> None:
    config = make_settings(budget={"mutations": 7, "window_seconds": 70})
    assert budgeting.available_tokens(cluster_state.ClusterState(), now=T0, settings=config) == 7


def test_blocks_when_the_budget_is_spent_until_it_refills() -> None:
    config = make_settings(budget={"mutations": 2, "window_seconds": 100})
    cluster: cluster_state.ClusterState | None = cluster_state.ClusterState()
    for _ in range(2):
        assert cluster is not None
        cluster = budgeting.take_token(cluster, now=T0, settings=config)
    assert cluster is not None
    assert budgeting.take_token(cluster, now=at(10), settings=config) is None
    decision = run_guard(cluster=cluster, config=config, now=at(49))
    assert decision.guardrail is Guardrail.BUDGET
    assert "2 mutations per 100s" in decision.detail
    assert run_guard(cluster=cluster, config=config, now=at(50)).allowed
    assert budgeting.take_token(cluster, now=at(50), settings=config) is not None


def test_breaker_is_checked_before_budget() -> None:
    cluster = cluster_state.ClusterState(
        breaker_open=True, last_new_workload_at=T0, budget_tokens=0.0, budget_refilled_at=T0
    )
    assert run_guard(cluster=cluster, now=at(1)).guardrail is Guardrail.BLAST_RADIUS


def test_the_bucket_never_holds_more_than_its_capacity() -> None:
    config = make_settings(budget={"mutations": 3, "window_seconds": 10})
    cluster = cluster_state.ClusterState(budget_tokens=2.0, budget_refilled_at=T0)
    assert budgeting.available_tokens(cluster, now=at(1000), settings=config) == 3
    assert budgeting.return_token(cluster_state.ClusterState(), now=T0, settings=config).budget_tokens == 3


def test_a_lowered_budget_applies_at_once() -> None:
    cluster = cluster_state.ClusterState(budget_tokens=20.0, budget_refilled_at=T0)
    assert budgeting.available_tokens(cluster, now=T0, settings=make_settings(budget={"mutations": 1})) == 1


def test_a_replica_whose_clock_is_behind_never_rewinds_the_bucket() -> None:
    config = make_settings(budget={"mutations": 10, "window_seconds": 10})
    cluster = cluster_state.ClusterState(budget_tokens=0.0, budget_refilled_at=at(100))
    behind = budgeting.refill(cluster, now=at(95), settings=config)
    assert behind.budget_tokens == 0
    assert behind.budget_refilled_at == at(100)


def test_a_returned_token_can_be_spent_again() -> None:
    config = make_settings(budget={"mutations": 1, "window_seconds": 1000})
    spent = budgeting.take_token(cluster_state.ClusterState(), now=T0, settings=config)
    assert spent is not None
    assert budgeting.take_token(spent, now=T0, settings=config) is None
    returned = budgeting.return_token(spent, now=T0, settings=config)
    assert budgeting.take_token(returned, now=T0, settings=config) is not None


def test_a_zero_budget_blocks_every_write() -> None:
    config = make_settings(budget={"mutations": 0})
    assert run_guard(config=config).guardrail is Guardrail.BUDGET


# --- reserve --------------------------------------------------------------------------------------------------


def test_reserve_takes_a_token_from_the_freshest_state() -> None:
    config = make_settings(budget={"mutations": 2, "window_seconds": 100})
    state, decision = budgeting.reserve(cluster_state.ClusterState(), now=T0, settings=config)
    assert decision.allowed
    assert state is not None
    assert state.budget_tokens == 1


@pytest.mark.parametrize(
    ("cluster", "guardrail"),
    [
        pytest.param(cluster_state.ClusterState(paused=True), Guardrail.PAUSED, id="paused"),
        pytest.param(
            cluster_state.ClusterState(breaker_open=True, last_new_workload_at=T0),
            Guardrail.BLAST_RADIUS,
            id="breaker",
        ),
        pytest.param(
            cluster_state.ClusterState(budget_tokens=0.5, budget_refilled_at=T0),
            Guardrail.BUDGET,
            id="budget",
        ),
    ],
)
def test_reserve_refuses_what_changed_since_guarding(
    cluster: cluster_state.ClusterState, guardrail: Guardrail
) -> None:
    state, decision = budgeting.reserve(cluster, now=T0, settings=make_settings())
    assert state is None
    assert decision.guardrail is guardrail


# --- the state object -----------------------------------------------------------------------------------------


def test_cluster_state_round_trips_through_json() -> None:
    cluster = cluster_state.ClusterState(
        budget_tokens=3.5,
        budget_refilled_at=T0,
        workloads={"shop/Deployment/cart": T0},
        last_new_workload_at=T0,
        breaker_open=True,
        breaker_since=T0,
        paused=True,
        paused_by="alice",
        paused_at=T0,
    )
    assert cluster_state.ClusterState.from_json(cluster.to_json()) == cluster


@pytest.mark.parametrize("raw", [None, ""], ids=["missing", "empty"])
def test_a_missing_state_object_reads_as_fresh(raw: str | None) -> None:
    assert cluster_state.ClusterState.from_json(raw) == cluster_state.ClusterState()


def test_a_damaged_state_object_reads_as_paused() -> None:
    state = cluster_state.ClusterState.from_json('{"budget_tokens": "many"')
    assert state.paused
    assert run_guard(cluster=state).guardrail is Guardrail.PAUSED


def test_target_snapshot_reads_the_ledger_from_the_annotations() -> None:
    raw = ledgers.dump([entry(Action.RAISE_MEMORY, 0)])
    snapshot = cluster_state.TargetSnapshot.from_annotations(
        namespace="shop", annotations={ledgers.ANNOTATION: raw}, own_namespace="ops"
    )
    assert [item.action for item in snapshot.ledger] == [Action.RAISE_MEMORY]
    assert (
        cluster_state.TargetSnapshot.from_annotations(
            namespace="shop", annotations=None, own_namespace="ops"
        ).ledger
        == []
    )


# --- properties -----------------------------------------------------------------------------------------------

amounts = st.integers(min_value=1, max_value=64 * Gi)


@hypothesis.given(
    from_amount=amounts,
    to_amount=amounts,
    max_memory=amounts,
    annotation=st.one_of(st.none(), amounts),
    ratio=st.floats(min_value=1.01, max_value=10),
)
def test_property_a_clamped_raise_never_exceeds_ceiling_or_step_and_is_never_blocked_for_them(
    from_amount: int, to_amount: int, max_memory: int, annotation: int | None, ratio: float
) -> None:
    config = make_settings(max_memory=max_memory, max_memory_step_ratio=ratio)
    annotations = {} if annotation is None else {cluster_state.MAX_MEMORY_ANNOTATION: str(annotation)}
    clamped = guarding.clamp_amount(
        action=Action.RAISE_MEMORY,
        from_amount=from_amount,
        to_amount=to_amount,
        annotations=annotations,
        settings=config,
        playbook="oom-raise-memory",
    )
    assert clamped <= max_memory
    assert annotation is None or clamped <= annotation
    assert clamped <= from_amount * ratio
    decision = run_guard(
        make_plan(from_amount=from_amount, to_amount=clamped),
        snapshot=make_snapshot(annotations=annotations),
        config=config,
    )
    assert decision.guardrail not in {Guardrail.CEILING, Guardrail.STEP}


@hypothesis.given(
    to_amount=amounts,
    max_memory=amounts,
    annotation=st.one_of(st.none(), amounts, st.text(max_size=5)),
)
def test_property_the_guard_never_allows_a_value_above_any_ceiling(
    to_amount: int, max_memory: int, annotation: int | str | None
) -> None:
    config = make_settings(max_memory=max_memory, max_memory_step_ratio=10)
    annotations = {} if annotation is None else {cluster_state.MAX_MEMORY_ANNOTATION: str(annotation)}
    decision = run_guard(
        make_plan(from_amount=None, to_amount=to_amount),
        snapshot=make_snapshot(annotations=annotations),
        config=config,
    )
    if decision.allowed:
        assert to_amount <= max_memory
        ceiling = guarding.ceiling_for(action=Action.RAISE_MEMORY, annotations=annotations, settings=config)
        assert ceiling is not None
        assert to_amount <= ceiling.amount


@hypothesis.given(
    mutations=st.integers(min_value=0, max_value=8),
    window=st.floats(min_value=1, max_value=1000),
    gaps=st.lists(st.floats(min_value=0, max_value=300), min_size=1, max_size=80),
    refunds=st.lists(st.booleans(), min_size=80, max_size=80),
)
def test_property_never_more_writes_than_the_budget_allows_in_any_interval(
    mutations: int, window: float, gaps: list[float], refunds: list[bool]
) -> None:
    """Token bucket bound: in any interval of length d, writes ≤ mutations + mutations × d / window."""
    config = make_settings(budget={"mutations": mutations, "window_seconds": window})
    cluster = cluster_state.ClusterState()
    writes: list[float] = []
    moment = 0.0
    for gap, refund in zip(gaps, refunds, strict=False):
        moment += gap
        taken = budgeting.take_token(cluster, now=at(moment), settings=config)
        if taken is None:
            continue
        if refund:
            # The write did not happen (409): the token goes back and no write is counted.
            cluster = budgeting.return_token(taken, now=at(moment), settings=config)
        else:
            cluster = taken
            writes.append(moment)
    for first in range(len(writes)):
        for last in range(first, len(writes)):
            span = writes[last] - writes[first]
            assert last - first + 1 <= mutations + mutations * span / window + 1e-6


@hypothesis.given(
    max_workloads=st.integers(min_value=1, max_value=6),
    quiet=st.floats(min_value=1, max_value=100),
    window=st.floats(min_value=1, max_value=100),
    alerts=st.lists(
        st.tuples(st.integers(min_value=0, max_value=12), st.floats(min_value=0, max_value=40)), max_size=60
    ),
)
def test_property_breaker_transitions_alternate_and_it_opens_exactly_when_too_many_alert(
    max_workloads: int, quiet: float, window: float, alerts: list[tuple[int, float]]
) -> None:
    config = make_settings(
        blast_radius={"max_workloads": max_workloads, "window_seconds": window, "quiet_seconds": quiet}
    )
    cluster = cluster_state.ClusterState()
    seen: list[cluster_state.BreakerTransition] = []
    moment = 0.0
    for workload, gap in alerts:
        moment += gap
        was_open = cluster.breaker_open
        cluster, transition = budgeting.note_workload(
            cluster, key=f"w{workload}", now=at(moment), settings=config
        )
        if not cluster.breaker_open:
            assert len(cluster.workloads) <= max_workloads
        if transition is cluster_state.BreakerTransition.OPENED:
            assert not was_open
            assert cluster.breaker_open
            assert len(cluster.workloads) == max_workloads + 1
        elif transition is cluster_state.BreakerTransition.CLOSED:
            assert was_open
            assert not cluster.breaker_open
        else:
            assert cluster.breaker_open == was_open
        if transition is not None:
            seen.append(transition)
    assert all(first != second for first, second in itertools.pairwise(seen))
    assert not seen or seen[0] is cluster_state.BreakerTransition.OPENED


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("[" * 1000 + "]" * 1000, id="nested-1000-deep"),
        pytest.param(
            '[{"action": "raise_memory", "playbook": "p", "occurrence": "o", "at": "2026-01-01T00:00:00", "by": "x"}]',
            id="naive-time",
        ),
        pytest.param("junk", id="junk"),
    ],
)
def test_an_unreadable_ledger_counts_as_the_cap_reached_naming_the_annotation(raw: str) -> None:
    snapshot = cluster_state.TargetSnapshot.from_annotations(
        namespace="shop", annotations={ledgers.ANNOTATION: raw}, own_namespace="ops"
    )
    decision = run_guard(snapshot=snapshot)
    assert decision.guardrail is Guardrail.CAP
    assert decision.detail.startswith(f"annotation {ledgers.ANNOTATION} ")
    assert decision.detail.endswith("counted as the cap reached, humans must look")
    # Escalations and diagnostics write nothing: they still go out.
    assert run_guard(make_plan(action=Action.ESCALATE), snapshot=snapshot).allowed


def test_a_breaker_closed_by_resume_is_announced_by_the_next_count_only() -> None:
    config = settings.Settings.model_validate({"guardrails": {"blast_radius": {"max_workloads": 1}}})
    state = cluster_state.ClusterState()
    state, _ = budgeting.note_workload(state, key="a", now=T0, settings=config)
    state, opened = budgeting.note_workload(state, key="b", now=T0, settings=config)
    assert opened is cluster_state.BreakerTransition.OPENED

    resumed = budgeting.set_paused(state, paused=False, by="on-call", now=T0)
    state, first = budgeting.note_workload(resumed, key="c", now=T0, settings=config)
    _, second = budgeting.note_workload(state, key="c", now=T0, settings=config)

    assert (resumed.breaker_open, first, second) == (False, cluster_state.BreakerTransition.CLOSED, None)
    said = budgeting.describe_transition(cluster_state.BreakerTransition.OPENED, settings=config)
    assert "`oom-responder resume` closes it now and counts afresh: up to 1 more" in said
