"""Following a mitigated workload: verdicts, schedule arithmetic, due times and claims (pure, clock injected).

Aspects covered:
* verdicts against the runbook's Step 6 criteria: an OOM kill since the mitigation fails; restarts above the
  allowed rate fail; memory at/above the threshold or rising is still leaking; otherwise stable; without
  Prometheus the verdict says it rests on pod state alone; scaled to 0 / unreadable → unknown;
* a verdict taken late says how late; the closing sentence after the last horizon;
* restart intervals: fixed, derived from the time to OOM with floor and ceiling, fixed when none is known;
  the time to OOM read from the killed container's lifetime;
* schedules stop on cancel, image change, expiry and max count; a late restart does not burst to catch up;
  consecutive stable verdicts stop a schedule;
* due times, claims (a live claim of another replica refuses, a lapsed one is taken), release;
* a new incident replaces the verdict series but keeps the running schedule; the same incident changes nothing;
* the restart patch carries the restart stamp, the ledger entry and the resourceVersion precondition;
* a verdict goes into the mitigation's ledger entry once; a missing entry writes nothing.
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from responder.logic import following, schedules, verdicts
from responder.models import analyses, follow_ups, ledgers, settings, targets

T0 = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.UTC)
TARGET = targets.Target(targets.WorkloadKind.DEPLOYMENT, "shop", "web")
CONFIG = settings.FollowUpSettings()


def at(seconds: float) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


def iso(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def pod(
    uid: str = "p1",
    *,
    restarts: int = 0,
    oom_started: datetime.datetime | None = None,
    oom_finished: datetime.datetime | None = None,
    container: str = "app",
) -> dict[str, Any]:
    status: dict[str, Any] = {"name": container, "restartCount": restarts, "state": {"running": {}}}
    if oom_finished is not None:
        status["lastState"] = {
            "terminated": {
                "reason": "OOMKilled",
                "exitCode": 137,
                "startedAt": iso(oom_started or oom_finished - datetime.timedelta(hours=1)),
                "finishedAt": iso(oom_finished),
            }
        }
    return {"metadata": {"uid": uid, "name": f"web-{uid}"}, "status": {"containerStatuses": [status]}}


WORKLOAD: dict[str, Any] = {
    "metadata": {"name": "web", "uid": "w1", "resourceVersion": "7", "annotations": {}},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"spec": {"containers": [{"name": "app", "image": "shop/web:1.2.2"}]}},
    },
}


def record(**update: Any) -> follow_ups.FollowUp:
    base = following.begin(
        target=TARGET,
        uid="w1",
        incident="fp@t0",
        playbook="oom-raise-memory",
        action=settings.Action.RAISE_MEMORY,
        acted_at=T0,
        config=CONFIG,
        pods=[pod(restarts=3)],
        container="app",
    )
    return base.model_copy(update=update)


def judged(
    rec: follow_ups.FollowUp,
    pods: list[dict[str, Any]],
    *,
    now: datetime.datetime,
    memory: follow_ups.MemoryReading | None = None,
    workload: dict[str, Any] | None = WORKLOAD,
) -> follow_ups.Verdict:
    verdict, _ = verdicts.judge(
        record=rec,
        horizon=rec.horizons[0],
        workload=workload,
        pods=pods,
        memory=memory,
        config=CONFIG,
        now=now,
    )
    return verdict


# ---- verdicts ---------------------------------------------------------------------------------------------


def test_default_horizons_are_1h_6h_24h_48h_after_the_mitigation() -> None:
    rec = record()
    assert [follow_ups.horizon_label(h.seconds) for h in rec.horizons] == ["1h", "6h", "24h", "48h"]
    assert [h.due_at for h in rec.horizons] == [at(3600), at(21600), at(86400), at(172800)]
    assert rec.restarts == {"p1/app": 3}


def test_an_oom_kill_after_the_mitigation_fails_the_verdict() -> None:
    verdict = judged(record(), [pod(restarts=4, oom_finished=at(1800))], now=at(3600))
    assert verdict.kind is follow_ups.VerdictKind.FAILED
    assert "OOMKilled again" in verdict.detail and "30m after the mitigation" in verdict.detail


def test_an_oom_kill_before_the_mitigation_does_not_count() -> None:
    verdict = judged(record(), [pod(restarts=3, oom_finished=at(-60))], now=at(3600))
    assert verdict.kind is follow_ups.VerdictKind.STABLE
    assert "no OOM kills, no restarts" in verdict.detail


def test_restarts_above_the_allowed_rate_fail_the_verdict_without_an_oom_kill() -> None:
    verdict = judged(record(), [pod(restarts=6)], now=at(3600))
    assert verdict.kind is follow_ups.VerdictKind.FAILED
    assert "3 container restart(s) in 1h" in verdict.detail and "none OOMKilled" in verdict.detail


def test_one_restart_in_an_hour_is_within_the_runbook_rate() -> None:
    verdict = judged(record(), [pod(restarts=4)], now=at(3600))
    assert verdict.kind is follow_ups.VerdictKind.STABLE
    assert "1 restart(s) since the last look" in verdict.detail


def test_new_pods_of_a_rollout_count_their_restarts_from_zero() -> None:
    verdict = judged(record(), [pod("p2", restarts=0), pod("p3", restarts=0)], now=at(3600))
    assert verdict.kind is follow_ups.VerdictKind.STABLE


def test_a_pod_without_a_baseline_counts_its_restarts_only_when_created_after_the_last_look() -> None:
    old = pod("old", restarts=5)
    old["metadata"]["creationTimestamp"] = iso(at(-86400))
    new = pod("new", restarts=3)
    new["metadata"]["creationTimestamp"] = iso(at(600))
    assert judged(record(), [old], now=at(3600)).kind is follow_ups.VerdictKind.STABLE
    verdict = judged(record(), [old, new], now=at(3600))
    assert verdict.kind is follow_ups.VerdictKind.FAILED and "3 container restart(s)" in verdict.detail


def test_without_prometheus_the_verdict_says_it_rests_on_pod_state_alone() -> None:
    verdict = judged(record(), [pod(restarts=3)], now=at(3600))
    assert verdict.evidence is follow_ups.Evidence.POD_STATE
    assert "no Prometheus" in verdict.detail and verdict.peak_percent is None


@pytest.mark.parametrize(
    ("memory", "kind", "words"),
    [
        pytest.param(
            follow_ups.MemoryReading(peak_percent_of_limit=61.0),
            follow_ups.VerdictKind.STABLE,
            "peak 61 % of the limit",
            id="flat-and-low",
        ),
        pytest.param(
            follow_ups.MemoryReading(peak_percent_of_limit=86.0),
            follow_ups.VerdictKind.STILL_LEAKING,
            "peaked at 86 %",
            id="above-80-percent",
        ),
        pytest.param(
            follow_ups.MemoryReading(
                peak_percent_of_limit=55.0, rising=True, time_to_oom_seconds=5 * 3600, pattern="linear_leak"
            ),
            follow_ups.VerdictKind.STILL_LEAKING,
            "still rising (linear_leak); OOM expected in about 5h",
            id="rising",
        ),
    ],
)
def test_memory_from_prometheus_judges_percent_of_limit_and_trend(
    memory: follow_ups.MemoryReading, kind: follow_ups.VerdictKind, words: str
) -> None:
    verdict = judged(record(), [pod(restarts=3)], now=at(3600), memory=memory)
    assert verdict.kind is kind
    assert verdict.evidence is follow_ups.Evidence.PROMETHEUS
    assert words in verdict.detail and "no Prometheus" not in verdict.detail


def test_a_workload_scaled_to_zero_gets_an_unknown_verdict_that_says_why() -> None:
    workload = {**WORKLOAD, "spec": {**WORKLOAD["spec"], "replicas": 0}}
    verdict = judged(record(), [], now=at(3600), workload=workload)
    assert verdict.kind is follow_ups.VerdictKind.UNKNOWN
    assert "scaled to 0" in verdict.detail


def test_an_unreadable_workload_gets_an_unknown_verdict() -> None:
    verdict = judged(record(), [pod()], now=at(3600), workload=None)
    assert verdict.kind is follow_ups.VerdictKind.UNKNOWN
    assert "could not be read" in verdict.detail


def test_a_verdict_taken_late_says_how_late_and_why() -> None:
    verdict = judged(record(), [pod(restarts=3)], now=at(3600 + 3 * 3600 + 600))
    assert verdict.late_seconds == 3 * 3600 + 600
    assert "Taken 3h 10m late: no replica was running when it fell due." in verdict.detail
    on_time = judged(record(), [pod(restarts=3)], now=at(3600 + 30))
    assert "late" not in on_time.detail


def stable(seconds: float, peak: float | None = None) -> follow_ups.Verdict:
    return follow_ups.Verdict(
        kind=follow_ups.VerdictKind.STABLE,
        evidence=follow_ups.Evidence.POD_STATE if peak is None else follow_ups.Evidence.PROMETHEUS,
        detail="",
        at=at(seconds),
        peak_percent=peak,
    )


def test_the_incident_closes_after_the_last_clean_horizon_with_the_peak() -> None:
    rec = record()
    done = tuple(
        h.model_copy(update={"verdict": stable(h.seconds, peak)})
        for h, peak in zip(rec.horizons, [48.0, 61.0, 55.0, 59.0], strict=True)
    )
    closed, text = verdicts.closing_summary(rec.model_copy(update={"horizons": done}))
    assert closed
    assert text == "no OOM kills for 48h, peak 61 % of limit"


def test_the_incident_is_not_closed_when_a_verdict_was_not_stable() -> None:
    rec = record()
    failed = follow_ups.Verdict(
        kind=follow_ups.VerdictKind.FAILED, evidence=follow_ups.Evidence.POD_STATE, detail="", at=at(21600)
    )
    done = (
        rec.horizons[0].model_copy(update={"verdict": stable(3600)}),
        rec.horizons[1].model_copy(update={"verdict": failed}),
    )
    closed, text = verdicts.closing_summary(rec.model_copy(update={"horizons": done}))
    assert not closed
    assert "1 of 2 verdicts were not stable (6h failed)" in text


# ---- time to OOM and intervals ----------------------------------------------------------------------------


def test_time_to_oom_is_the_shortest_lifetime_of_an_oom_killed_container() -> None:
    pods = [
        pod("a", oom_started=at(0), oom_finished=at(4 * 3600)),
        pod("b", oom_started=at(0), oom_finished=at(3 * 3600)),
        pod("c"),
    ]
    assert schedules.time_to_oom_from_pods(pods, container="app") == 3 * 3600
    assert schedules.time_to_oom_from_pods([pod("c")], container="app") is None


@pytest.mark.parametrize(
    ("options", "time_to_oom", "interval", "words"),
    [
        pytest.param(settings.ScheduledRestart(), 3600.0, 21600, "every 6h (fixed)", id="fixed"),
        pytest.param(
            settings.ScheduledRestart(time_to_oom_fraction=0.7),
            10 * 3600.0,
            7 * 3600,
            "0.7 × time to OOM 10h",
            id="derived",
        ),
        pytest.param(
            settings.ScheduledRestart(time_to_oom_fraction=0.7, min_interval_seconds=3600),
            1000.0,
            3600,
            "raised to the floor",
            id="floor",
        ),
        pytest.param(
            settings.ScheduledRestart(time_to_oom_fraction=0.7, max_interval_seconds=86400),
            10 * 86400.0,
            86400,
            "lowered to the ceiling",
            id="ceiling",
        ),
        pytest.param(
            settings.ScheduledRestart(time_to_oom_fraction=0.7, interval_seconds=7200),
            None,
            7200,
            "no time to OOM known",
            id="unknown-time-to-oom",
        ),
    ],
)
def test_restart_interval_is_fixed_or_derived_from_time_to_oom_within_floor_and_ceiling(
    options: settings.ScheduledRestart, time_to_oom: float | None, interval: float, words: str
) -> None:
    got, how = schedules.restart_interval(options, time_to_oom_seconds=time_to_oom)
    assert got == interval
    assert words in how


def test_floor_above_ceiling_is_refused_in_the_config() -> None:
    with pytest.raises(ValueError, match="min_interval_seconds"):
        settings.ScheduledRestart(min_interval_seconds=7200, max_interval_seconds=3600)


# ---- schedules -------------------------------------------------------------------------------------------


def schedule(**options: Any) -> follow_ups.Schedule:
    made, _ = schedules.new_schedule(
        options=settings.ScheduledRestart(**options),
        playbook="oom-raise-memory",
        incident="fp@t0",
        workload=WORKLOAD,
        now=T0,
        time_to_oom_seconds=None,
    )
    return made


def test_a_new_schedule_restarts_one_interval_from_now_until_seven_days() -> None:
    made, how = schedules.new_schedule(
        options=settings.ScheduledRestart(max_count=10),
        playbook="p",
        incident="fp@t0",
        workload=WORKLOAD,
        now=T0,
        time_to_oom_seconds=None,
    )
    assert made.next_at == at(21600)
    assert made.expires_at == at(7 * 86400)
    assert made.images == {"app": "shop/web:1.2.2"}
    assert how == "rolling restart every 6h (fixed), until 2026-03-08 12:00 UTC or 10 restarts"


def test_a_schedule_stops_when_the_image_changes() -> None:
    workload = {
        **WORKLOAD,
        "spec": {
            **WORKLOAD["spec"],
            "template": {"spec": {"containers": [{"name": "app", "image": "shop/web:1.2.3-memleak-fix"}]}},
        },
    }
    stop = schedules.schedule_stop(schedule(), now=at(60), workload=workload)
    assert stop is not None
    assert stop[0] is follow_ups.StopReason.IMAGE_CHANGED
    assert "shop/web:1.2.2 → shop/web:1.2.3-memleak-fix" in stop[1]


def test_a_schedule_stops_at_expiry_and_at_max_count_and_on_cancel() -> None:
    assert schedules.schedule_stop(schedule(), now=at(7 * 86400), workload=WORKLOAD) == (
        follow_ups.StopReason.EXPIRED,
        "expired after 0 restart(s)",
    )
    counted = schedule(max_count=2).model_copy(update={"count": 2})
    stop = schedules.schedule_stop(counted, now=at(60), workload=WORKLOAD)
    assert stop is not None and stop[0] is follow_ups.StopReason.MAX_COUNT
    cancelled = schedule().model_copy(update={"stop_requested_by": "ops@laptop"})
    stop = schedules.schedule_stop(cancelled, now=at(60), workload=WORKLOAD)
    assert stop == (follow_ups.StopReason.CANCELLED, "cancelled by ops@laptop")
    assert schedules.schedule_stop(schedule(), now=at(60), workload=WORKLOAD) is None


def test_a_late_restart_does_not_burst_to_catch_up() -> None:
    made = schedule(interval_seconds=100)
    on_time = schedules.after_restart(made, now=at(101))
    assert (on_time.count, on_time.next_at) == (1, at(200))
    late = schedules.after_restart(made, now=at(1000))
    assert (late.count, late.next_at) == (1, at(1100))


def test_consecutive_stable_verdicts_stop_the_schedule_and_another_verdict_resets_the_count() -> None:
    rec = record(schedule=schedule(stable_verdicts_to_stop=2))
    rec, stopped = schedules.after_verdict(rec, follow_ups.VerdictKind.STABLE, now=at(3600))
    assert not stopped
    rec, stopped = schedules.after_verdict(rec, follow_ups.VerdictKind.STILL_LEAKING, now=at(7200))
    assert not stopped and rec.schedule is not None and rec.schedule.stable_seen == 0
    rec, _ = schedules.after_verdict(rec, follow_ups.VerdictKind.STABLE, now=at(9000))
    rec, stopped = schedules.after_verdict(rec, follow_ups.VerdictKind.STABLE, now=at(9600))
    assert stopped and rec.schedule is not None and rec.schedule.stopped is follow_ups.StopReason.STABLE


# ---- due times and claims --------------------------------------------------------------------------------


def test_due_time_is_the_earliest_pending_horizon_or_restart() -> None:
    assert following.due_at(record(), verification_poll_seconds=2) == at(3600)
    with_schedule = record(schedule=schedule(interval_seconds=600))
    assert following.due_at(with_schedule, verification_poll_seconds=2) == at(600)
    cancelled = record(schedule=schedule().model_copy(update={"stop_requested_by": "ops"}))
    assert following.due_at(cancelled, verification_poll_seconds=2) == T0


def test_an_unconfirmed_record_is_due_at_once_and_never_finished() -> None:
    unconfirmed = record(confirmed=False)
    assert following.due_at(unconfirmed, verification_poll_seconds=2) == T0
    done = tuple(h.model_copy(update={"verdict": stable(h.seconds)}) for h in unconfirmed.horizons)
    assert not following.is_finished(unconfirmed.model_copy(update={"horizons": done}))


def test_claims_refuse_a_live_claim_of_another_replica_and_take_a_lapsed_one() -> None:
    claimed = following.claim(record(), holder="replica-a", now=T0, seconds=120)
    assert claimed is not None and claimed.claim is not None and claimed.claim.until == at(120)
    assert not following.is_claimable(claimed, now=at(60))
    assert following.claim(claimed, holder="replica-b", now=at(60), seconds=120) is None
    assert following.claim(claimed, holder="replica-a", now=at(60), seconds=120) is not None
    assert following.is_claimable(claimed, now=at(120))
    taken = following.claim(claimed, holder="replica-b", now=at(121), seconds=120)
    assert taken is not None and taken.claim is not None and taken.claim.holder == "replica-b"
    assert following.release(taken, holder="replica-a").claim == taken.claim
    assert following.release(taken, holder="replica-b").claim is None


def test_finished_when_every_verdict_is_taken_and_nothing_else_runs() -> None:
    rec = record()
    assert not following.is_finished(rec)
    done = tuple(h.model_copy(update={"verdict": stable(h.seconds)}) for h in rec.horizons)
    assert following.is_finished(rec.model_copy(update={"horizons": done}))
    assert not following.is_finished(rec.model_copy(update={"horizons": done, "schedule": schedule()}))


def test_a_new_incident_replaces_the_verdicts_but_keeps_the_running_schedule() -> None:
    old = record(schedule=schedule())
    newer = following.begin(
        target=TARGET,
        uid="w1",
        incident="fp@t1",
        playbook="oom-raise-memory",
        action=settings.Action.RAISE_MEMORY,
        acted_at=at(7200),
        config=CONFIG,
    )
    merged = following.add_incident(old, newer)
    assert merged.incident == "fp@t1" and merged.horizons[0].due_at == at(7200 + 3600)
    assert merged.schedule == old.schedule
    assert following.add_incident(merged, newer) == merged


# ---- ledger and patches ---------------------------------------------------------------------------------


def entry(occurrence: str) -> ledgers.LedgerEntry:
    return ledgers.LedgerEntry(
        action=settings.Action.RAISE_MEMORY, playbook="p", occurrence=occurrence, at=T0, by="replica-a"
    )


def test_a_verdict_is_noted_in_the_mitigations_ledger_entry_once() -> None:
    entries = [entry("other"), entry("fp@t0")]
    updated = verdicts.with_verdict(entries, incident="fp@t0", label="1h", kind=follow_ups.VerdictKind.STABLE)
    assert updated is not None
    assert updated[1].verdicts == {"1h": "stable"} and updated[0].verdicts is None
    assert (
        verdicts.with_verdict(updated, incident="fp@t0", label="1h", kind=follow_ups.VerdictKind.STABLE)
        is None
    )
    assert (
        verdicts.with_verdict(entries, incident="gone", label="1h", kind=follow_ups.VerdictKind.STABLE)
        is None
    )
    assert ledgers.load(ledgers.dump(updated))[1].verdicts == {"1h": "stable"}


def test_the_restart_patch_carries_stamp_ledger_entry_and_precondition() -> None:
    made = schedule()
    new = schedules.restart_entry(
        schedule=made, workload=WORKLOAD, now=at(21600), identity="replica-a", thread=None
    )
    assert new.occurrence == "fp@t0/restart-1"
    body = schedules.restart_patch(workload=WORKLOAD, entry=new)
    assert body["metadata"]["resourceVersion"] == "7"
    stamp = body["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
    assert stamp == "2026-03-01T18:00:00Z"
    written = ledgers.load(body["metadata"]["annotations"][ledgers.ANNOTATION])
    assert [e.occurrence for e in written] == ["fp@t0/restart-1"]


def test_pod_selector_renders_match_labels_and_expressions() -> None:
    workload = {
        "spec": {
            "selector": {
                "matchLabels": {"app": "web"},
                "matchExpressions": [
                    {"key": "tier", "operator": "In", "values": ["a", "b"]},
                    {"key": "canary", "operator": "DoesNotExist"},
                ],
            }
        }
    }
    assert following.pod_selector(workload) == "app=web,tier in (a,b),!canary"
    assert following.pod_selector({"spec": {}}) is None


def test_the_prometheus_analysis_becomes_the_verdicts_memory_reading() -> None:
    leak = analyses.Analysis(
        pattern=analyses.Pattern.LINEAR_LEAK,
        reason="",
        peak_bytes=100 * 2**20,
        limit_bytes=200 * 2**20,
        time_to_oom_seconds=7200,
    )
    reading = verdicts.reading_from_analysis(leak)
    assert reading == follow_ups.MemoryReading(
        peak_percent_of_limit=50.0, rising=True, time_to_oom_seconds=7200, pattern="linear_leak"
    )
    flat = analyses.Analysis(pattern=analyses.Pattern.STABLE, reason="", peak_bytes=10, limit_bytes=100)
    assert verdicts.reading_from_analysis(flat) == follow_ups.MemoryReading(
        peak_percent_of_limit=10.0, rising=False, time_to_oom_seconds=None, pattern="stable"
    )
    unknown = analyses.Analysis(pattern=analyses.Pattern.INSUFFICIENT_DATA, reason="no Prometheus")
    assert verdicts.reading_from_analysis(unknown) is None
