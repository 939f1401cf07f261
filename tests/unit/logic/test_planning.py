"""Planning a mitigation from a snapshot: arithmetic, ceilings, fallbacks and the exact PATCH bodies.

Aspects covered:

* raise_memory: `max(cur + step, cur × ratio)` rounded to MiB; capped by the playbook, the annotation, the
  global ceiling and the single-step guardrail; Guaranteed QoS kept; a container without a limit skipped or
  given a first limit; VPA-managed, paused, Job and bare-pod targets refused with their reason;
* scale_out: `+N` and `+P%`; capped; an HPA's minReplicas raised instead (never above its maxReplicas);
  DaemonSets fall through to the next action (evict_pod);
* every workload body carries the change, the appended ledger and the resourceVersion precondition;
* capture_diagnostics and escalate are carried out in addition; the dry-run pod, the revert body and
  whether a revert still applies (only while the raised limit is there).
"""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest

from responder.logic import planning
from responder.logic.actions import raise_memory, rollout_restart, scale_out
from responder.models import alerts, cluster_state, decisions, ledgers, mutations, settings, targets

NOW = datetime.datetime(2026, 3, 1, 12, 0, 0, tzinfo=datetime.UTC)
MI = 2**20

DEPLOYMENT = targets.Target(targets.WorkloadKind.DEPLOYMENT, "shop", "web")


def make_event(
    kind: settings.AlertKind = settings.AlertKind.OOM_KILLED, container: str | None = "app"
) -> alerts.AlertEvent:
    return alerts.AlertEvent(
        kind=kind,
        alertname="x",
        status=alerts.AlertStatus.FIRING,
        fingerprint="f00d",
        starts_at=NOW - datetime.timedelta(hours=1),
        namespace="shop",
        pod="web-7d9f-abcde",
        container=container,
        severity=None,
        labels={},
        annotations={},
        generator_url="",
        external_url="",
    )


def make_workload(
    *,
    limit: str | None = "128Mi",
    request: str | None = "64Mi",
    replicas: int = 2,
    annotations: dict[str, str] | None = None,
    paused: bool = False,
    sidecar: bool = True,
) -> dict[str, Any]:
    resources: dict[str, Any] = {"limits": {"cpu": "1"}, "requests": {"cpu": "10m"}}
    if limit is not None:
        resources["limits"]["memory"] = limit
    if request is not None:
        resources["requests"]["memory"] = request
    containers: list[dict[str, Any]] = [{"name": "app", "image": "app:1", "resources": resources}]
    if sidecar:
        containers.append({"name": "sidecar", "image": "side:1", "resources": {"limits": {"memory": "32Mi"}}})
    spec: dict[str, Any] = {
        "replicas": replicas,
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": containers}},
    }
    if paused:
        spec["paused"] = True
    return {
        "metadata": {
            "name": "web",
            "namespace": "shop",
            "resourceVersion": "4711",
            "annotations": annotations or {},
        },
        "spec": spec,
    }


def snapshot(
    workload: dict[str, Any] | None = None,
    *,
    target: targets.Target = DEPLOYMENT,
    hpa: dict[str, Any] | None = None,
    vpa: str | None = None,
    pod: dict[str, Any] | None = None,
) -> mutations.WorkloadSnapshot:
    workload = workload or make_workload()
    raw = (workload["metadata"].get("annotations") or {}).get(ledgers.ANNOTATION)
    return mutations.WorkloadSnapshot(
        target=target,
        workload=workload,
        pod=pod if pod is not None else {"metadata": {"name": "web-7d9f-abcde"}, "status": {}},
        ledger=tuple(ledgers.load(raw)),
        hpa=hpa,
        vpa_update_mode=vpa,
    )


def playbook(*actions: settings.ActionSpec) -> settings.Playbook:
    return settings.Playbook(name="pb", alerts=[settings.AlertKind.OOM_KILLED], actions=list(actions))


def propose(
    snap: mutations.WorkloadSnapshot,
    book: settings.Playbook,
    *,
    config: settings.Settings | None = None,
    event: alerts.AlertEvent | None = None,
) -> mutations.Proposal:
    return planning.propose(
        snapshot=snap,
        event=event or make_event(),
        playbook=book,
        config=config or settings.Settings(playbooks=[book]),
        now=NOW,
        identity="responder-0",
        thread="1700.1",
    )


RAISE = settings.ActionSpec(raise_memory=settings.RaiseMemory())
SCALE = settings.ActionSpec(scale_out=settings.ScaleOut())
EVICT = settings.ActionSpec(evict_pod=settings.EvictPod())


def app_resources(patch: dict[str, Any]) -> dict[str, Any]:
    [container] = patch["spec"]["template"]["spec"]["containers"]
    assert container["name"] == "app"
    resources: dict[str, Any] = container["resources"]
    return resources


# ---- arithmetic ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        pytest.param(128 * MI, 228 * MI, id="small-limits-take-the-fixed-step"),
        pytest.param(1024 * MI, 1229 * MI, id="large-limits-take-the-ratio-rounded-up-to-mib"),
        pytest.param(500 * MI, 600 * MI, id="both-equal"),
    ],
)
def test_raises_like_the_vertical_pod_autoscaler(current: int, expected: int) -> None:
    assert raise_memory.raised_limit(current, ratio=1.2, min_step=100 * MI) == expected


@pytest.mark.parametrize(
    ("current", "step", "expected"),
    [
        pytest.param(2, "+1", 3, id="plus-one"),
        pytest.param(2, "+3", 5, id="plus-three"),
        pytest.param(10, "+25%", 13, id="percent-rounds-up"),
        pytest.param(1, "+10%", 2, id="percent-adds-at-least-one"),
    ],
)
def test_scales_by_a_count_or_a_percentage(current: int, step: str, expected: int) -> None:
    assert scale_out.scaled_replicas(current, step) == expected


# ---- raise_memory ---------------------------------------------------------------------------------------


def test_raises_the_alerted_container_and_keeps_a_smaller_request() -> None:
    proposal = propose(snapshot(), playbook(RAISE))
    mutation = proposal.mutation
    assert mutation is not None
    assert mutation.plan.action is settings.Action.RAISE_MEMORY
    assert (mutation.plan.from_value, mutation.plan.to_value) == ("128Mi", "228Mi")
    assert (mutation.plan.from_amount, mutation.plan.to_amount) == (128 * MI, 228 * MI)
    assert app_resources(mutation.workload_patch) == {"limits": {"memory": "228Mi"}}
    assert mutation.change == raise_memory.MemoryChange("app", 128 * MI, 228 * MI, 64 * MI, None)


def test_guaranteed_qos_stays_guaranteed() -> None:
    mutation = propose(snapshot(make_workload(limit="1Gi", request="1Gi")), playbook(RAISE)).mutation
    assert mutation is not None
    assert app_resources(mutation.workload_patch) == {
        "limits": {"memory": "1229Mi"},
        "requests": {"memory": "1229Mi"},
    }


def test_the_body_carries_the_ledger_and_the_resource_version_precondition() -> None:
    earlier = ledgers.LedgerEntry(
        action=settings.Action.SCALE_OUT,
        playbook="x",
        occurrence="o",
        at=NOW - datetime.timedelta(days=1),
        by="r",
    )
    workload = make_workload(annotations={ledgers.ANNOTATION: ledgers.dump([earlier])})
    mutation = propose(snapshot(workload), playbook(RAISE)).mutation
    assert mutation is not None
    metadata = mutation.workload_patch["metadata"]
    assert metadata["resourceVersion"] == "4711"
    written = ledgers.load(metadata["annotations"][ledgers.ANNOTATION])
    assert written[0] == earlier
    assert written[1] == mutation.entry
    assert written[1].to_value == "228Mi" and written[1].by == "responder-0" and written[1].thread == "1700.1"
    assert written[1].occurrence == make_event().occurrence_id
    json.dumps(mutation.workload_patch)  # the body is plain JSON


@pytest.mark.parametrize(
    ("config", "annotations", "expected"),
    [
        pytest.param(settings.RaiseMemory(max="200Mi"), {}, "200Mi", id="playbook-max"),
        pytest.param(
            settings.RaiseMemory(), {cluster_state.MAX_MEMORY_ANNOTATION: "150Mi"}, "150Mi", id="annotation"
        ),
    ],
)
def test_the_raise_is_capped_by_the_lowest_ceiling(
    config: settings.RaiseMemory, annotations: dict[str, str], expected: str
) -> None:
    book = playbook(settings.ActionSpec(raise_memory=config))
    mutation = propose(snapshot(make_workload(annotations=annotations)), book).mutation
    assert mutation is not None
    assert mutation.plan.to_value == expected


def test_the_raise_is_capped_by_the_single_step_guardrail() -> None:
    # 32Mi + 100Mi would be more than ×2 in one step.
    event = make_event(container="sidecar")
    mutation = propose(snapshot(), playbook(RAISE), event=event).mutation
    assert mutation is not None
    assert (mutation.plan.container, mutation.plan.to_value) == ("sidecar", "64Mi")


def test_a_container_at_the_ceiling_is_refused() -> None:
    workload = make_workload(annotations={cluster_state.MAX_MEMORY_ANNOTATION: "128Mi"})
    proposal = propose(snapshot(workload), playbook(RAISE))
    assert proposal.mutation is None
    [(action, decision)] = proposal.skipped
    assert action is settings.Action.RAISE_MEMORY
    assert decision.reason is decisions.Reason.AT_CEILING


def test_a_container_without_a_limit_is_skipped_and_reported() -> None:
    proposal = propose(snapshot(make_workload(limit=None)), playbook(RAISE))
    assert proposal.mutation is None
    assert proposal.skipped[0][1].reason is decisions.Reason.NO_MEMORY_LIMIT


def test_a_container_without_a_limit_gets_a_first_limit_when_configured() -> None:
    book = playbook(settings.ActionSpec(raise_memory=settings.RaiseMemory(skip_without_limit=False)))
    mutation = propose(snapshot(make_workload(limit=None, request="64Mi")), book).mutation
    assert mutation is not None
    assert (mutation.plan.from_value, mutation.plan.to_value) == (None, "164Mi")


def test_a_vpa_managed_workload_is_not_fought() -> None:
    proposal = propose(snapshot(vpa="Auto"), playbook(RAISE))
    assert proposal.skipped[0][1].reason is decisions.Reason.VPA_MANAGED
    assert propose(snapshot(vpa="Off"), playbook(RAISE)).mutation is not None


def test_a_paused_deployment_is_refused() -> None:
    proposal = propose(snapshot(make_workload(paused=True)), playbook(RAISE))
    assert proposal.skipped[0][1].reason is decisions.Reason.PAUSED_ROLLOUT


@pytest.mark.parametrize(
    "kind", [targets.WorkloadKind.JOB, targets.WorkloadKind.POD], ids=["job", "bare-pod"]
)
def test_memory_cannot_be_raised_without_a_mutable_template(kind: targets.WorkloadKind) -> None:
    proposal = propose(snapshot(target=targets.Target(kind, "shop", "web")), playbook(RAISE))
    assert proposal.skipped[0][1].reason is decisions.Reason.NOT_SCALABLE


def test_the_container_is_taken_from_the_pod_status_when_the_alert_names_none() -> None:
    pod = {
        "status": {
            "containerStatuses": [
                {"name": "app", "lastState": {}},
                {"name": "sidecar", "lastState": {"terminated": {"reason": "OOMKilled"}}},
            ]
        }
    }
    assert raise_memory.choose_container(snapshot(pod=pod), None) == "sidecar"
    assert raise_memory.choose_container(snapshot(), "nope") is None


def test_the_dry_run_pod_carries_the_new_memory_and_the_template_labels() -> None:
    snap = snapshot(make_workload(limit="1Gi", request="1Gi"))
    mutation = propose(snap, playbook(RAISE)).mutation
    assert mutation is not None and mutation.change is not None
    pod = raise_memory.dry_run_pod(snap, mutation.change)
    app = pod["spec"]["containers"][0]
    assert app["resources"]["limits"] == {"cpu": "1", "memory": "1229Mi"}
    assert app["resources"]["requests"] == {"cpu": "10m", "memory": "1229Mi"}
    assert pod["spec"]["containers"][1]["resources"] == {"limits": {"memory": "32Mi"}}
    assert pod["metadata"]["labels"] == {"app": "web"}
    # The snapshot itself is untouched.
    assert snap.template_spec["containers"][0]["resources"]["limits"]["memory"] == "1Gi"


def test_the_revert_body_writes_the_previous_values_back() -> None:
    change = raise_memory.MemoryChange("app", 1024 * MI, 1229 * MI, 1024 * MI, 1229 * MI)
    assert app_resources(raise_memory.revert_patch(change)) == {
        "limits": {"memory": "1Gi"},
        "requests": {"memory": "1Gi"},
    }


def test_a_revert_applies_only_while_the_raised_limit_is_still_there() -> None:
    change = raise_memory.MemoryChange("app", 1024 * MI, 1229 * MI, 1024 * MI, 1229 * MI)
    assert raise_memory.still_raised(snapshot(make_workload(limit="1229Mi", request="1229Mi")), change)
    # Someone set another limit while the rollout was being followed: theirs stays.
    assert not raise_memory.still_raised(snapshot(make_workload(limit="2Gi", request="1229Mi")), change)
    assert not raise_memory.still_raised(snapshot(make_workload(limit="1Gi", request="1Gi")), change)


def test_a_verification_result_updates_only_its_own_entry() -> None:
    mutation = propose(snapshot(), playbook(RAISE)).mutation
    assert mutation is not None
    other = mutation.entry.model_copy(update={"occurrence": "other"})
    updated = ledgers.with_result([other, mutation.entry], mutation.entry, decisions.Outcome.FAILED)
    assert [e.result for e in updated] == [decisions.Outcome.DONE, decisions.Outcome.FAILED]


# ---- scale_out ------------------------------------------------------------------------------------------


def test_scales_out_through_spec_replicas_in_the_same_write_as_the_ledger() -> None:
    mutation = propose(snapshot(), playbook(SCALE), event=make_event(settings.AlertKind.MEMORY_HIGH)).mutation
    assert mutation is not None
    assert mutation.change.replicas == 3
    assert mutation.workload_patch["spec"] == {"replicas": 3}
    assert ledgers.ANNOTATION in mutation.workload_patch["metadata"]["annotations"]
    assert mutation.change.changes_workload


def test_scale_out_is_capped_by_the_max_replicas_annotation() -> None:
    workload = make_workload(replicas=4, annotations={cluster_state.MAX_REPLICAS_ANNOTATION: "4"})
    proposal = propose(snapshot(workload), playbook(SCALE))
    assert proposal.mutation is None
    assert proposal.skipped[0][1].reason is decisions.Reason.AT_CEILING


def make_hpa(min_replicas: int, max_replicas: int) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "resourceVersion": "99"},
        "spec": {"minReplicas": min_replicas, "maxReplicas": max_replicas},
    }


def test_an_hpa_gets_a_higher_floor_instead_of_a_direct_scale() -> None:
    mutation = propose(snapshot(hpa=make_hpa(2, 5)), playbook(SCALE)).mutation
    assert mutation is not None
    assert mutation.change.hpa_name == "web"
    assert mutation.change.hpa_patch == {"spec": {"minReplicas": 3}}
    assert "spec" not in mutation.workload_patch  # only the ledger is written on the workload
    assert not mutation.change.changes_workload


def test_an_hpa_floor_never_exceeds_its_maximum() -> None:
    book = playbook(settings.ActionSpec(scale_out=settings.ScaleOut(step="+5")))
    mutation = propose(snapshot(hpa=make_hpa(2, 4)), book).mutation
    assert mutation is not None and mutation.change.replicas == 4
    at_max = propose(snapshot(hpa=make_hpa(4, 4)), book)
    assert at_max.mutation is None
    assert at_max.skipped[0][1].reason is decisions.Reason.HPA_AT_MAX


def test_a_daemonset_cannot_scale_so_the_next_action_evicts() -> None:
    target = targets.Target(targets.WorkloadKind.DAEMON_SET, "shop", "agent")
    proposal = propose(
        snapshot(target=target), playbook(SCALE, EVICT), event=make_event(settings.AlertKind.MEMORY_HIGH)
    )
    assert proposal.mutation is not None
    assert proposal.mutation.plan.action is settings.Action.EVICT_POD
    assert proposal.mutation.change.pod == "web-7d9f-abcde"
    assert [(a, d.reason) for a, d in proposal.skipped] == [
        (settings.Action.SCALE_OUT, decisions.Reason.NOT_SCALABLE)
    ]


def test_evicting_needs_a_live_pod() -> None:
    snap = mutations.WorkloadSnapshot(target=DEPLOYMENT, workload=make_workload(), pod=None)
    proposal = propose(snap, playbook(EVICT))
    assert proposal.skipped[0][1].reason is decisions.Reason.POD_GONE


# ---- rollout_restart and extras ----------------------------------------------------------------------------


def test_a_restart_stamps_the_template_annotation() -> None:
    book = playbook(settings.ActionSpec(rollout_restart=settings.RolloutRestart()))
    mutation = propose(snapshot(), book).mutation
    assert mutation is not None
    stamp = mutation.workload_patch["spec"]["template"]["metadata"]["annotations"][
        rollout_restart.RESTARTED_AT_ANNOTATION
    ]
    assert stamp == "2026-03-01T12:00:00Z"


def test_diagnostics_and_escalation_are_carried_out_in_addition() -> None:
    book = playbook(
        SCALE,
        settings.ActionSpec(capture_diagnostics=settings.CaptureDiagnostics()),
        settings.ActionSpec(escalate=settings.Escalate()),
    )
    proposal = propose(snapshot(), book)
    assert proposal.mutation is not None and proposal.mutation.plan.action is settings.Action.SCALE_OUT
    assert [spec.action for spec in proposal.extras] == [
        settings.Action.CAPTURE_DIAGNOSTICS,
        settings.Action.ESCALATE,
    ]


def test_only_the_first_applicable_action_is_planned() -> None:
    proposal = propose(snapshot(), playbook(RAISE, SCALE))
    assert proposal.mutation is not None and proposal.mutation.plan.action is settings.Action.RAISE_MEMORY
    assert proposal.skipped == ()


# ---- GitOps-owned workloads ----------------------------------------------------------------------------

ARGO = {"argocd.argoproj.io/tracking-id": "shop-web:apps/Deployment:shop/web"}


def test_a_gitops_owned_workload_is_changed_anyway_and_the_note_says_what_to_commit() -> None:
    proposal = propose(snapshot(make_workload(annotations=ARGO)), playbook(RAISE))
    assert proposal.mutation is not None
    note = proposal.mutation.plan.note
    assert note.startswith("Argo CD Application shop-web manages this workload and will revert")
    assert "commit resources.limits.memory=228Mi for container 'app'" in note


def test_with_recommend_a_gitops_owned_workload_is_not_written_and_every_action_says_why() -> None:
    book = settings.Playbook(
        name="pb", alerts=[settings.AlertKind.OOM_KILLED], gitops="recommend", actions=[RAISE, SCALE]
    )
    workload = make_workload()
    workload["metadata"]["labels"] = {
        "kustomize.toolkit.fluxcd.io/name": "apps",
        "kustomize.toolkit.fluxcd.io/namespace": "flux-system",
    }
    proposal = propose(snapshot(workload), book)
    assert proposal.mutation is None
    reasons = [(action, refusal.reason) for action, refusal in proposal.skipped]
    assert reasons == [
        (settings.Action.RAISE_MEMORY, decisions.Reason.GITOPS_MANAGED),
        (settings.Action.SCALE_OUT, decisions.Reason.GITOPS_MANAGED),
    ]
    assert "Flux Kustomization flux-system/apps" in proposal.skipped[0][1].detail
    assert "commit spec.replicas=3 to its source" in proposal.skipped[1][1].detail


def test_an_eviction_is_not_reverted_by_gitops_and_an_unowned_workload_gets_no_note() -> None:
    book = settings.Playbook(
        name="pb", alerts=[settings.AlertKind.OOM_KILLED], gitops="recommend", actions=[EVICT]
    )
    evicted = propose(snapshot(make_workload(annotations=ARGO)), book)
    assert evicted.mutation is not None
    assert evicted.mutation.plan.note == ""
    plain = propose(snapshot(), playbook(RAISE))
    assert plain.mutation is not None
    assert plain.mutation.plan.note == ""


def test_a_scale_out_through_an_hpa_names_the_hpa_field() -> None:
    hpa = {"metadata": {"name": "web"}, "spec": {"minReplicas": 2, "maxReplicas": 10}}
    proposal = propose(snapshot(make_workload(annotations=ARGO), hpa=hpa), playbook(SCALE))
    assert proposal.mutation is not None
    assert (
        "commit the HorizontalPodAutoscaler's spec.minReplicas=3 to its source" in proposal.mutation.plan.note
    )


# ---- restarts that are not OOM kills (a crash loop) -----------------------------------------------------------


def _restarted(reason: str, exit_code: int) -> dict[str, Any]:
    terminated = {"reason": reason, "exitCode": exit_code, "finishedAt": "2026-03-01T11:59:00Z"}
    return {
        "metadata": {"name": "web-7d9f-abcde"},
        "status": {"containerStatuses": [{"name": "app", "lastState": {"terminated": terminated}}]},
    }


def test_restarts_that_are_not_oom_kills_get_no_mitigation_but_keep_diagnostics_and_escalation() -> None:
    book = playbook(SCALE, EVICT, settings.ActionSpec(escalate=settings.Escalate()))
    event = make_event(kind=settings.AlertKind.RESTARTING_FREQUENTLY)

    proposal = propose(snapshot(pod=_restarted("Error", 1)), book, event=event)

    assert proposal.mutation is None
    assert [(a, d.reason) for a, d in proposal.skipped] == [
        (settings.Action.SCALE_OUT, decisions.Reason.NOT_OOM_KILLED),
        (settings.Action.EVICT_POD, decisions.Reason.NOT_OOM_KILLED),
    ]
    assert "exit code 1 (Error)" in proposal.skipped[0][1].detail
    assert [spec.action for spec in proposal.extras] == [settings.Action.ESCALATE]


def test_restarts_after_an_oom_kill_or_of_unknown_cause_are_mitigated() -> None:
    event = make_event(kind=settings.AlertKind.RESTARTING_FREQUENTLY)
    oom = propose(snapshot(pod=_restarted("OOMKilled", 137)), playbook(SCALE), event=event)
    unknown = propose(snapshot(), playbook(SCALE), event=event)

    assert oom.mutation is not None and unknown.mutation is not None
