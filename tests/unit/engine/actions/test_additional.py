"""The actions carried out beside a mitigation: capture_diagnostics and escalate (their I/O parts).

Aspects covered:

* diagnostics report the containers' states and the pod's recent Events, and say when the Events could not
  be read instead of failing;
* an escalation says what was already done and carries the diagnostics captured before it; it is an
  ESCALATION notice with a Warning Event.
"""

from __future__ import annotations

from responder.engine.actions import base, capture_diagnostics, escalate
from responder.models import actions, decisions, notices, targets
from tests.unit.engine import cluster

GIVEN = base.AdditionalInput(
    target=targets.Target(targets.WorkloadKind.DEPLOYMENT, "shop", "web"),
    namespace="shop",
    pod_name="web-7d9f-abcde",
    pod=cluster.oom_killed_pod(),
    done="memory limit raised",
    diagnostics="",
)


async def test_diagnostics_report_the_containers_and_the_recent_events() -> None:
    api = cluster.seeded()
    api.put_object(
        "/api/v1/namespaces/shop/events/e1",
        {
            "metadata": {"name": "e1"},
            "involvedObject": {"name": "web-7d9f-abcde"},
            "type": "Warning",
            "reason": "BackOff",
            "message": "Back-off restarting failed container",
            "lastTimestamp": "2026-03-01T11:59:00Z",
        },
    )

    result = await capture_diagnostics.carry_out(
        cluster.fakeapi.kube_on(api), given=GIVEN, options=actions.CaptureDiagnostics()
    )

    assert result.outcome is decisions.Outcome.DONE
    assert "container app: running, restarts 1, last terminated OOMKilled (exit 137)" in result.detail
    assert "Warning BackOff: Back-off restarting failed container" in result.detail
    assert result.diagnostics == result.detail


async def test_diagnostics_say_when_the_events_cannot_be_read() -> None:
    api = cluster.seeded()
    api.refuse("GET", "/api/v1/namespaces/shop/events", 403, "events is forbidden")

    result = await capture_diagnostics.carry_out(
        cluster.fakeapi.kube_on(api), given=GIVEN, options=actions.CaptureDiagnostics()
    )

    assert result.detail.endswith("events unavailable: events is forbidden")


async def test_an_escalation_says_what_was_done_and_carries_the_diagnostics() -> None:
    api = cluster.seeded()
    with_diagnostics = base.AdditionalInput(
        target=GIVEN.target,
        namespace="shop",
        pod_name=GIVEN.pod_name,
        pod=None,
        done="memory limit raised",
        diagnostics="pod shop/web-7d9f-abcde: the pod no longer exists",
    )

    result = await escalate.carry_out(
        cluster.fakeapi.kube_on(api), given=with_diagnostics, options=actions.Escalate(message="Look now.")
    )

    assert result.outcome is decisions.Outcome.ESCALATED
    assert result.kind is notices.NoticeKind.ESCALATION and result.event
    assert result.detail == (
        "Look now. Already done: memory limit raised.\npod shop/web-7d9f-abcde: the pod no longer exists"
    )
    assert result.summary == "shop/Deployment/web needs a human: Look now."
