"""Sample notices for each alert kind and outcome (test support; also feeds docs/render_slack_preview.py).

Built the way the engine builds them: an `AlertEvent` as normalized from a real Alertmanager payload, the
target workload, the playbook and the change.
"""

from __future__ import annotations

import dataclasses
import datetime

from responder.models import alerts, decisions, notices, settings, targets

__all__ = ["AT", "EXTERNAL_URL", "event", "notice", "previews"]

AT = datetime.datetime(2024, 5, 14, 9, 30, 12, tzinfo=datetime.UTC)
EXTERNAL_URL = "http://alertmanager.monitoring.svc:9093"

_ANNOTATIONS = {
    settings.AlertKind.OOM_KILLED: {
        "summary": "Container app in payments/checkout-7d9f8b6c5-x2x7q was OOMKilled",
        "description": "The container was killed with exit code 137 (OOMKilled) 2 times in the last 10 minutes.",
        "runbook_url": "https://runbooks.example.com/RB-010#step-2",
    },
    settings.AlertKind.MEMORY_HIGH: {
        "summary": "Pod payments/checkout-7d9f8b6c5-x2x7q uses 91% of its memory limit",
        "description": "Working set above 90% of the limit for 5 minutes.",
        "runbook_url": "https://runbooks.example.com/RB-010#option-b",
    },
    settings.AlertKind.RESTARTING_FREQUENTLY: {
        "summary": "Pod payments/checkout-7d9f8b6c5-x2x7q restarted 4 times in the last hour",
        "runbook_url": "https://runbooks.example.com/RB-010#investigation",
    },
}

_NAMES = {
    settings.AlertKind.OOM_KILLED: ("OOMKilled", "critical"),
    settings.AlertKind.MEMORY_HIGH: ("PodMemoryHigh", "warning"),
    settings.AlertKind.RESTARTING_FREQUENTLY: ("PodRestartingFrequently", "warning"),
}

TARGET = targets.Target(kind=targets.WorkloadKind.DEPLOYMENT, namespace="payments", name="checkout")


def event(
    kind: settings.AlertKind = settings.AlertKind.OOM_KILLED,
    *,
    fingerprint: str = "5f1c7e0d9a3b2c41",
    status: alerts.AlertStatus = alerts.AlertStatus.FIRING,
) -> alerts.AlertEvent:
    alertname, severity = _NAMES[kind]
    labels = {
        "alertname": alertname,
        "namespace": "payments",
        "pod": "checkout-7d9f8b6c5-x2x7q",
        "container": "app",
        "severity": severity,
    }
    return alerts.AlertEvent(
        kind=kind,
        alertname=alertname,
        status=status,
        fingerprint=fingerprint,
        starts_at=AT - datetime.timedelta(minutes=2),
        namespace="payments",
        pod="checkout-7d9f8b6c5-x2x7q",
        container="app",
        severity=severity,
        labels=labels,
        annotations=_ANNOTATIONS[kind],
        generator_url="http://prometheus.monitoring.svc:9090/graph?g0.expr=kube_pod_container_status_last_terminated_reason",
        external_url=EXTERNAL_URL,
    )


def notice(
    kind: notices.NoticeKind = notices.NoticeKind.ACTION,
    alert: settings.AlertKind = settings.AlertKind.OOM_KILLED,
    **changes: object,
) -> notices.Notice:
    """A notice about the sample alert; keyword arguments replace fields (incident, thread, ...)."""
    ev = event(alert)
    base = notices.Notice(
        kind=kind,
        at=AT,
        incident=ev.occurrence_id,
        summary="Raised the memory limit of payments/checkout (container app) from 512Mi to 640Mi",
        event=ev,
        target=TARGET,
        playbook="oom-raise-memory",
        action=settings.Action.RAISE_MEMORY,
        outcome=decisions.Outcome.DONE,
        from_value="512Mi",
        to_value="640Mi",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]  # test data: fields by name


def previews() -> dict[str, notices.Notice]:
    """One notice per alert kind and outcome the preview shows, by title."""
    restarting = settings.AlertKind.RESTARTING_FREQUENTLY
    return {
        "OOMKilled: memory limit raised": notice(),
        "PodMemoryHigh: scaled out": notice(
            alert=settings.AlertKind.MEMORY_HIGH,
            summary="Scaled payments/checkout out from 3 to 4 replicas",
            playbook="memory-high-scale-out",
            action=settings.Action.SCALE_OUT,
            from_value="3 replicas",
            to_value="4 replicas",
        ),
        "PodRestartingFrequently: escalated to humans": notice(
            notices.NoticeKind.ESCALATION,
            alert=restarting,
            summary="payments/checkout keeps restarting after a scale-out: a human must look at this workload",
            playbook="restarting-scale-out",
            action=settings.Action.ESCALATE,
            outcome=decisions.Outcome.ESCALATED,
            from_value=None,
            to_value=None,
            detail="Last events: Back-off restarting failed container app (x12); Liveness probe failed (x4).",
        ),
        "Blocked by a guardrail": notice(
            notices.NoticeKind.REFUSAL,
            summary="Did not raise the memory limit of payments/checkout: 2Gi is the ceiling",
            outcome=decisions.Outcome.BLOCKED,
            reason=decisions.Reason.GUARDRAIL,
            guardrail=decisions.Guardrail.CEILING,
            from_value="2Gi",
            to_value="2458Mi",
            detail="oom-responder.io/max-memory on the Deployment is 2Gi.",
        ),
        "Dry run": notice(
            summary="Would raise the memory limit of payments/checkout (container app) from 512Mi to 640Mi",
            outcome=decisions.Outcome.WOULD_DO,
            dry_run=True,
        ),
        "Verification failed (in the thread)": notice(
            notices.NoticeKind.VERIFICATION,
            summary="The rollout of payments/checkout after raising memory to 640Mi failed",
            outcome=decisions.Outcome.FAILED,
            detail="ReplicaSet checkout-5c8d7 FailedCreate: exceeded quota: mem-quota, requested: "
            "limits.memory=640Mi, used: limits.memory=1920Mi, limited: limits.memory=2Gi",
        ),
        "Verification passed (in the thread)": notice(
            notices.NoticeKind.VERIFICATION,
            summary="The rollout of payments/checkout finished: 3/3 replicas run with 640Mi",
            outcome=decisions.Outcome.DONE,
        ),
        "Resolved (in the thread)": notice(
            notices.NoticeKind.RESOLVED,
            summary="OOMKilled for payments/checkout resolved",
            outcome=None,
            from_value=None,
            to_value=None,
        ),
    }
