"""Resolving an alerted pod to its top-level workload, and checking that the alert is still true.

Aspects covered:

* the owner chain: Pod → ReplicaSet → Deployment, StatefulSet, DaemonSet, Job, bare Pod, unsupported owners;
* the fallbacks when the pod is gone: workload labels on the alert, the workloads the pod's name points at
  (StatefulSet ordinal, Deployment ReplicaSet hash, DaemonSet suffix), and the ledgers that know the occurrence;
* OOMKilled: only a kill newer than the last action counts; an answered occurrence is "already handled";
  a new kill after an answer is acted on again;
* PodMemoryHigh needs the pod; a repeat of an answered occurrence is not answered twice;
* the notifier thread is recovered from the ledger.
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from responder.logic import resolving
from responder.models import alerts, decisions, ledgers, settings, targets

T0 = datetime.datetime(2026, 3, 1, 12, 0, 0, tzinfo=datetime.UTC)
STARTS = datetime.datetime(2026, 3, 1, 11, 0, 0, tzinfo=datetime.UTC)


def make_event(
    kind: settings.AlertKind = settings.AlertKind.OOM_KILLED,
    *,
    pod: str | None = "web-7d9f-abcde",
    container: str | None = "app",
    labels: dict[str, str] | None = None,
) -> alerts.AlertEvent:
    return alerts.AlertEvent(
        kind=kind,
        alertname="OOMKilled",
        status=alerts.AlertStatus.FIRING,
        fingerprint="f00d",
        starts_at=STARTS,
        namespace="shop",
        pod=pod,
        container=container,
        severity="warning",
        labels=labels or {},
        annotations={},
        generator_url="",
        external_url="",
    )


def make_entry(
    at: datetime.datetime, occurrence: str = "other@x", thread: str | None = None
) -> ledgers.LedgerEntry:
    return ledgers.LedgerEntry(
        action=settings.Action.RAISE_MEMORY,
        from_value="128Mi",
        to_value="228Mi",
        playbook="oom-raise-memory",
        occurrence=occurrence,
        at=at,
        by="responder-0",
        thread=thread,
    )


def make_pod(
    finished_at: datetime.datetime | None, *, reason: str = "OOMKilled", restarts: int = 1
) -> dict[str, Any]:
    last: dict[str, Any] = {}
    if finished_at is not None:
        last = {
            "terminated": {
                "reason": reason,
                "exitCode": 137,
                "finishedAt": finished_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        }
    return {
        "metadata": {"name": "web-7d9f-abcde", "namespace": "shop"},
        "status": {
            "containerStatuses": [
                {"name": "app", "restartCount": restarts, "lastState": last, "state": {"running": {}}},
                {"name": "sidecar", "restartCount": 0, "lastState": {}, "state": {"running": {}}},
            ]
        },
    }


def owned_by(kind: str, name: str) -> dict[str, Any]:
    return {"metadata": {"ownerReferences": [{"kind": kind, "name": name, "controller": True, "uid": "u"}]}}


# ---- owner chain ---------------------------------------------------------------------------------------


def test_finds_the_controller_owner_and_ignores_non_controller_references() -> None:
    body = {
        "metadata": {
            "ownerReferences": [
                {"kind": "Something", "name": "x", "controller": False},
                {"kind": "ReplicaSet", "name": "web-7d9f", "controller": True},
            ]
        }
    }
    assert resolving.controller_of(body) == resolving.OwnerRef("ReplicaSet", "web-7d9f")
    assert resolving.controller_of({"metadata": {}}) is None


def test_a_pod_owned_by_a_replicaset_means_reading_the_replicaset_next() -> None:
    owner = resolving.controller_of(owned_by("ReplicaSet", "web-7d9f"))
    step = resolving.resolve_owner(namespace="shop", kind="Pod", name="web-7d9f-abcde", owner=owner)
    assert step.follow == resolving.OwnerRef("ReplicaSet", "web-7d9f")
    assert step.target is None


def test_a_replicaset_owned_by_a_deployment_resolves_to_the_deployment() -> None:
    step = resolving.resolve_owner(
        namespace="shop", kind="ReplicaSet", name="web-7d9f", owner=resolving.OwnerRef("Deployment", "web")
    )
    assert step.target == targets.Target(targets.WorkloadKind.DEPLOYMENT, "shop", "web")


@pytest.mark.parametrize(
    ("owner_kind", "expected"),
    [
        pytest.param("StatefulSet", targets.WorkloadKind.STATEFUL_SET, id="statefulset"),
        pytest.param("DaemonSet", targets.WorkloadKind.DAEMON_SET, id="daemonset"),
        pytest.param("Job", targets.WorkloadKind.JOB, id="job"),
    ],
)
def test_a_pod_owned_directly_resolves_to_its_workload(
    owner_kind: str, expected: targets.WorkloadKind
) -> None:
    step = resolving.resolve_owner(
        namespace="shop", kind="Pod", name="p", owner=resolving.OwnerRef(owner_kind, "db")
    )
    assert step.target == targets.Target(expected, "shop", "db")


def test_a_pod_without_a_controller_is_a_bare_pod_target() -> None:
    step = resolving.resolve_owner(namespace="shop", kind="Pod", name="lonely", owner=None)
    assert step.target == targets.Target(targets.WorkloadKind.POD, "shop", "lonely")


def test_a_bare_replicaset_or_an_unknown_owner_is_target_not_found() -> None:
    bare = resolving.resolve_owner(namespace="shop", kind="ReplicaSet", name="rs", owner=None)
    odd = resolving.resolve_owner(
        namespace="shop", kind="Pod", name="p", owner=resolving.OwnerRef("SparkApplication", "s")
    )
    assert bare.refusal is not None and bare.refusal.reason is decisions.Reason.TARGET_NOT_FOUND
    assert odd.refusal is not None and odd.refusal.reason is decisions.Reason.TARGET_NOT_FOUND
    assert "SparkApplication" in odd.refusal.detail


def test_reads_the_workload_from_the_alert_labels_when_configured() -> None:
    names = settings.AlertsSettings()
    event = make_event(labels={"workload_kind": "StatefulSet", "workload": "db"})
    assert resolving.owner_from_labels(event, names) == resolving.OwnerRef("StatefulSet", "db")
    assert resolving.owner_from_labels(make_event(labels={"workload": "db"}), names) is None


def test_finds_the_workload_whose_ledger_knows_the_occurrence() -> None:
    event = make_event()
    web = targets.Target(targets.WorkloadKind.DEPLOYMENT, "shop", "web")
    api = targets.Target(targets.WorkloadKind.DEPLOYMENT, "shop", "api")
    candidates = [(api, [make_entry(T0)]), (web, [make_entry(T0, event.occurrence_id)])]
    assert resolving.find_by_occurrence(candidates, event.occurrence_id) == web
    assert resolving.find_by_occurrence(candidates, "nope@x") is None


def test_recovers_the_notifier_thread_of_the_incident() -> None:
    event = make_event()
    entries = [make_entry(T0, event.occurrence_id, thread="1700.01"), make_entry(T0, "other", thread="9")]
    assert resolving.thread_of(entries, event.occurrence_id) == "1700.01"
    assert resolving.thread_of(entries, "missing") is None


# ---- still true ----------------------------------------------------------------------------------------


def test_a_kill_with_no_action_before_it_is_acted_on() -> None:
    decision = resolving.check_still_true(event=make_event(), pod=make_pod(T0), entries=[])
    assert decision.allowed
    assert "app" in decision.detail


def test_a_kill_older_than_the_last_action_is_not_a_new_kill() -> None:
    entries = [make_entry(T0)]
    decision = resolving.check_still_true(
        event=make_event(), pod=make_pod(T0 - datetime.timedelta(minutes=5)), entries=entries
    )
    assert decision.reason is decisions.Reason.NO_NEW_KILL


def test_the_same_occurrence_without_a_newer_kill_is_already_handled() -> None:
    event = make_event()
    entries = [make_entry(T0, event.occurrence_id)]
    decision = resolving.check_still_true(
        event=event, pod=make_pod(T0 - datetime.timedelta(seconds=1)), entries=entries
    )
    assert decision.reason is decisions.Reason.ALREADY_HANDLED


def test_a_new_kill_after_the_answer_is_acted_on_even_for_the_same_occurrence() -> None:
    event = make_event()
    entries = [make_entry(T0, event.occurrence_id)]
    decision = resolving.check_still_true(
        event=event, pod=make_pod(T0 + datetime.timedelta(minutes=3)), entries=entries
    )
    assert decision.allowed


def test_a_pod_whose_status_shows_no_oom_kill_is_refused() -> None:
    decision = resolving.check_still_true(event=make_event(), pod=make_pod(T0, reason="Error"), entries=[])
    assert decision.reason is decisions.Reason.NO_NEW_KILL


def test_only_the_alerted_container_counts() -> None:
    decision = resolving.check_still_true(event=make_event(container="sidecar"), pod=make_pod(T0), entries=[])
    assert decision.reason is decisions.Reason.NO_NEW_KILL


def test_an_oom_alert_for_a_pod_that_is_gone_is_pod_gone_unless_answered() -> None:
    event = make_event()
    gone = resolving.check_still_true(event=event, pod=None, entries=[])
    answered = resolving.check_still_true(
        event=event, pod=None, entries=[make_entry(T0, event.occurrence_id)]
    )
    assert gone.reason is decisions.Reason.POD_GONE
    assert answered.reason is decisions.Reason.ALREADY_HANDLED


def test_memory_high_needs_the_pod_to_still_exist() -> None:
    event = make_event(settings.AlertKind.MEMORY_HIGH)
    assert resolving.check_still_true(event=event, pod=make_pod(None), entries=[]).allowed
    assert resolving.check_still_true(event=event, pod=None, entries=[]).reason is decisions.Reason.POD_GONE


def test_a_repeat_of_an_answered_restart_alert_is_already_handled() -> None:
    event = make_event(settings.AlertKind.RESTARTING_FREQUENTLY)
    entries = [make_entry(T0, event.occurrence_id)]
    assert resolving.check_still_true(event=event, pod=None, entries=[]).allowed
    assert (
        resolving.check_still_true(event=event, pod=None, entries=entries).reason
        is decisions.Reason.ALREADY_HANDLED
    )


def test_the_last_action_ignores_entries_that_wrote_nothing() -> None:
    escalation = make_entry(T0 + datetime.timedelta(hours=1)).model_copy(
        update={"action": settings.Action.ESCALATE}
    )
    assert resolving.last_action_at([make_entry(T0), escalation]) == T0
    assert resolving.last_action_at([]) is None


def test_a_deployment_pod_name_points_at_its_replicaset_and_deployment_then_a_daemonset() -> None:
    found = resolving.owners_by_pod_name("shop", "web-api-5f8d9c7b6-x2x4q")

    assert [(c.target.kind, c.target.name, c.replica_set) for c in found] == [
        (targets.WorkloadKind.DEPLOYMENT, "web-api", "web-api-5f8d9c7b6"),
        (targets.WorkloadKind.DAEMON_SET, "web-api-5f8d9c7b6", None),
    ]
    assert all(c.target.namespace == "shop" for c in found)


def test_a_statefulset_pod_name_points_at_the_statefulset_first() -> None:
    found = resolving.owners_by_pod_name("shop", "db-main-2")

    assert [(c.target.kind, c.target.name) for c in found] == [
        (targets.WorkloadKind.STATEFUL_SET, "db-main"),
        (targets.WorkloadKind.DEPLOYMENT, "db"),
    ]


@pytest.mark.parametrize("name", ["web", "", "-", "web-", "-0"])
def test_a_name_no_controller_would_give_points_nowhere(name: str) -> None:
    assert resolving.owners_by_pod_name("shop", name) == ()


def test_a_ledger_records_an_occurrence_only_when_an_entry_names_it() -> None:
    entries = [make_entry(T0, occurrence="fp@1")]

    assert resolving.records(entries, "fp@1")
    assert not resolving.records(entries, "fp@2")
    assert not resolving.records([], "fp@1")


@pytest.mark.parametrize(
    ("pod", "labels", "expected"),
    [
        ("web-7d9f8c6b5-x2x7q", {}, (targets.WorkloadKind.DEPLOYMENT, "web")),
        ("db-0", {}, (targets.WorkloadKind.STATEFUL_SET, "db")),
        ("agent-x7k2p", {}, (targets.WorkloadKind.DAEMON_SET, "agent")),
        # The owner labels win over the pod's name; a ReplicaSet named there needs a read: the name is used.
        (
            "web-7d9f8c6b5-x2x7q",
            {"workload_kind": "StatefulSet", "workload": "cache"},
            (targets.WorkloadKind.STATEFUL_SET, "cache"),
        ),
        (
            "web-7d9f8c6b5-x2x7q",
            {"workload_kind": "ReplicaSet", "workload": "web-7d9f8c6b5"},
            (targets.WorkloadKind.DEPLOYMENT, "web"),
        ),
        ("standalone", {}, None),
    ],
)
def test_the_likely_target_is_guessed_from_owner_labels_then_the_pods_name(
    pod: str, labels: dict[str, str], expected: tuple[targets.WorkloadKind, str] | None
) -> None:
    guess = resolving.likely_target(make_event(pod=pod, labels=labels), settings.AlertsSettings())

    assert (None if guess is None else (guess.kind, guess.name)) == expected
