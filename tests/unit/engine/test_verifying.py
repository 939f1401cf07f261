"""Judging one observation of a rollout (`verifying.judge`, pure).

Aspects covered:

* nothing is judged before the controller observed the written generation;
* a Deployment completes when every replica is updated and available, fails on ReplicaFailure or
  ProgressDeadlineExceeded;
* a StatefulSet completes when its revisions converge; with a partition, when the pods at or above it are
  updated (the others keep the current revision by design);
* an `OnDelete` StatefulSet or DaemonSet is done once the change is observed: its controller replaces no pod;
* the `Verifier` follows in the background, reverts a failed raise (with `revert_on_failure`), records the
  failed result in the ledger entry and reports it (notice and Warning Event).
"""

from __future__ import annotations

from typing import Any

import pytest

from responder.engine import verifying
from responder.models import decisions, ledgers, notices, targets
from tests.unit.engine import cluster

Kind = targets.WorkloadKind


def statefulset(status: dict[str, Any], *, replicas: int = 3, strategy: dict[str, Any] | None = None) -> Any:
    spec: dict[str, Any] = {"replicas": replicas}
    if strategy is not None:
        spec["updateStrategy"] = strategy
    return {"spec": spec, "status": {"observedGeneration": 2, **status}}


def test_nothing_is_judged_before_the_controller_observed_the_generation() -> None:
    workload = {"spec": {"replicas": 1}, "status": {"observedGeneration": 1, "updatedReplicas": 1}}

    assert verifying.judge(Kind.DEPLOYMENT, workload, generation=2) is None


def test_a_deployment_completes_when_every_replica_is_updated_and_available() -> None:
    progressing = {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 2, "availableReplicas": 3}
    done = {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}

    assert (
        verifying.judge(Kind.DEPLOYMENT, {"spec": {"replicas": 2}, "status": progressing}, generation=2)
        is None
    )
    verdict = verifying.judge(Kind.DEPLOYMENT, {"spec": {"replicas": 2}, "status": done}, generation=2)
    assert verdict is not None and verdict.outcome is decisions.Outcome.DONE


@pytest.mark.parametrize(
    ("condition", "shown"),
    [
        ({"type": "ReplicaFailure", "status": "True", "message": "exceeded quota"}, "exceeded quota"),
        ({"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}, "Deadline"),
    ],
)
def test_a_deployment_fails_on_a_replica_failure_or_a_missed_deadline(condition: Any, shown: str) -> None:
    status = {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 1, "conditions": [condition]}

    verdict = verifying.judge(Kind.DEPLOYMENT, {"spec": {"replicas": 2}, "status": status}, generation=2)

    assert verdict is not None and verdict.outcome is decisions.Outcome.FAILED
    assert shown in verdict.detail


def test_a_statefulset_completes_when_its_revisions_converge() -> None:
    rolling = {"readyReplicas": 3, "updatedReplicas": 3, "currentRevision": "a", "updateRevision": "b"}
    converged = {"readyReplicas": 3, "updatedReplicas": 3, "currentRevision": "b", "updateRevision": "b"}

    assert verifying.judge(Kind.STATEFUL_SET, statefulset(rolling), generation=2) is None
    verdict = verifying.judge(Kind.STATEFUL_SET, statefulset(converged), generation=2)
    assert verdict is not None and verdict.outcome is decisions.Outcome.DONE


def test_a_partitioned_statefulset_completes_when_the_pods_above_the_partition_are_updated() -> None:
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}
    started = {"readyReplicas": 3, "updatedReplicas": 0, "currentRevision": "a", "updateRevision": "b"}
    staged = {"readyReplicas": 3, "updatedReplicas": 1, "currentRevision": "a", "updateRevision": "b"}

    assert verifying.judge(Kind.STATEFUL_SET, statefulset(started, strategy=strategy), generation=2) is None
    verdict = verifying.judge(Kind.STATEFUL_SET, statefulset(staged, strategy=strategy), generation=2)
    assert verdict is not None and verdict.outcome is decisions.Outcome.DONE


@pytest.mark.parametrize("kind", [Kind.STATEFUL_SET, Kind.DAEMON_SET])
def test_an_on_delete_workload_is_done_once_the_change_is_observed(kind: targets.WorkloadKind) -> None:
    # The controller replaces no pod: nothing is updated, and that is what OnDelete means.
    status = {"readyReplicas": 3, "updatedReplicas": 0, "currentRevision": "a", "updateRevision": "b"}
    workload = statefulset(status, strategy={"type": "OnDelete"})

    verdict = verifying.judge(kind, workload, generation=2)

    assert verdict is not None and verdict.outcome is decisions.Outcome.DONE
    assert "OnDelete" in verdict.detail
    assert verifying.judge(kind, workload, generation=3) is None


# ---- following, recording and reporting (`verifying.Verifier`, over an in-memory API) ------------------------


async def test_a_completed_rollout_is_reported_and_a_failed_raise_is_reverted_and_recorded() -> None:
    api = cluster.seeded()
    config = cluster.config({"raise_memory": {"revert_on_failure": True}})
    fast = config.verification.model_copy(update={"timeout_seconds": 0.01, "poll_seconds": 0.001})
    r = cluster.responder(api, config.model_copy(update={"verification": fast}))
    await r.processor.handle(r.item())
    await r.processor.wait_verifications()  # the fake has no controller: the rollout never completes

    [verification] = [n for n in r.notices.told if n.kind is notices.NoticeKind.VERIFICATION]
    assert verification.outcome is decisions.Outcome.FAILED
    assert verification.detail.endswith("Reverted to 128Mi.")
    workload = api.objects[cluster.DEPLOYMENT]
    assert workload["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] == "128Mi"
    [entry] = ledgers.load(workload["metadata"]["annotations"][ledgers.ANNOTATION])
    assert entry.result is decisions.Outcome.FAILED
    [event] = [e for e in api.sent("POST", cluster.EVENTS) if e.body["action"] == "verify"]
    assert event.body["reason"] == "failed:rollout_failed"


def test_a_scale_out_is_judged_against_the_count_it_asked_for() -> None:
    old_count = {
        "spec": {"replicas": 2},
        "status": {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2},
    }
    new_count = {
        "spec": {"replicas": 3},
        "status": {"observedGeneration": 3, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3},
    }

    assert verifying.judge(Kind.DEPLOYMENT, old_count, generation=2, replicas=3) is None
    verdict = verifying.judge(Kind.DEPLOYMENT, new_count, generation=2, replicas=3)
    assert verdict is not None and verdict.detail == "3 of 3 replicas updated and available"
