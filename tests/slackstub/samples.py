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
        **follow_up_previews(),
        "Silenced in Alertmanager (in the thread)": notice(
            notices.NoticeKind.SILENCE,
            summary="silenced OOMKilled for Deployment payments/checkout until 10:00 UTC (Alertmanager silence "
            "3f6a2c1e-8b7d-4e52-9a0f-5d1c2b3a4e6f); it is expired early if the mitigation fails",
            outcome=None,
            from_value=None,
            to_value=None,
            silence_id="3f6a2c1e-8b7d-4e52-9a0f-5d1c2b3a4e6f",
        ),
        "Diagnostics: previous log (in the thread)": notice(
            summary="diagnostics of payments/checkout-7d9f8b6c5-x2x7q",
            action=settings.Action.CAPTURE_DIAGNOSTICS,
            from_value=None,
            to_value=None,
            detail="container app: running, restarts 3, last terminated OOMKilled (exit 137) at "
            "2026-03-01T09:27:41Z\nprevious log of app: 14 matching lines (2000 lines, 188412 bytes), the last 5 shown",
            log_lines=(
                "2026-03-01T09:27:12Z WARN cache: session store at 480 MiB, possible leak (evictions 0)",
                "2026-03-01T09:27:30Z WARN heap used 497 MiB of 512 MiB after GC",
                "2026-03-01T09:27:39Z ERROR POST /orders token=[REDACTED] failed: memory allocation failed",
                "<--- Last few GCs --->",
                "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory",
            ),
        ),
        "Silence expired early (in the thread)": notice(
            notices.NoticeKind.SILENCE,
            summary="silence 3f6a2c1e-8b7d-4e52-9a0f-5d1c2b3a4e6f expired early: the rollout of raise_memory "
            "512Mi → 640Mi on payments/checkout failed",
            outcome=None,
            from_value=None,
            to_value=None,
            silence_id="3f6a2c1e-8b7d-4e52-9a0f-5d1c2b3a4e6f",
        ),
        "Resolved (in the thread)": notice(
            notices.NoticeKind.RESOLVED,
            summary="OOMKilled for payments/checkout resolved",
            outcome=None,
            from_value=None,
            to_value=None,
        ),
    }


def _follow_up(summary: str, detail: str, *, hours: float, **changes: object) -> notices.Notice:
    fields: dict[str, object] = {
        "summary": summary,
        "detail": detail,
        "at": AT + datetime.timedelta(hours=hours),
        "playbook": "oom-raise-memory",
        "action": None,
        "outcome": decisions.Outcome.DONE,
        "from_value": None,
        "to_value": None,
        **changes,
    }
    return notice(notices.NoticeKind.FOLLOW_UP, **fields)


def follow_up_previews() -> dict[str, notices.Notice]:
    """The thread after the mitigation (runbook Step 6, Solution 4), up to the 48 h verdict."""
    where = TARGET.key
    return {
        "Restarts scheduled (in the thread)": notice(
            summary=f"rolling restarts of {where} scheduled",
            action=settings.Action.SCHEDULED_RESTART,
            from_value=None,
            to_value=None,
            detail="rolling restart every 4h 12m (0.7 × time to OOM 6h, from Prometheus), until "
            "2024-05-21 09:30 UTC or 20 restarts; the first at 2024-05-14 13:42:12 UTC",
        ),
        "1h verdict (in the thread)": _follow_up(
            f"1h verdict for {where}: stable",
            "1h: no OOM kills, no restarts, peak 52 % of the limit.",
            hours=1,
        ),
        "Scheduled restart (in the thread)": _follow_up(
            f"Scheduled restart 1 of 20 of {where}",
            "restartedAt 2024-05-14T13:42:12Z. Next one at 2024-05-14 17:54:12 UTC (every 4h 12m, until "
            "2024-05-21 09:30 UTC).",
            hours=4.2,
            action=settings.Action.ROLLOUT_RESTART,
        ),
        "6h verdict (in the thread)": _follow_up(
            f"6h verdict for {where}: stable",
            "6h: no OOM kills, no restarts, peak 61 % of the limit.",
            hours=6,
        ),
        "Schedule stopped: the fix shipped (in the thread)": _follow_up(
            f"Restart schedule of {where} stopped (image changed) after 3 restart(s)",
            "the image changed (app: registry.example/checkout:1.2.2 → registry.example/checkout:1.2.3-memleak-fix): "
            "the fix shipped. A fresh series of verdicts starts now (1h, 6h, 24h, 48h) for the new image.",
            hours=13.5,
            action=settings.Action.ROLLOUT_RESTART,
        ),
        "24h verdict (in the thread)": _follow_up(
            f"24h verdict for {where}: stable",
            "24h: no OOM kills, no restarts, peak 47 % of the limit.",
            hours=37.5,
        ),
        "48h verdict, incident closed (in the thread)": _follow_up(
            f"48h verdict for {where}: stable. Incident closed: no OOM kills for 48h, peak 61 % of limit",
            "48h: no OOM kills, no restarts, peak 49 % of the limit. Every verdict was stable: the runbook's "
            "Step 6 success criteria are met.",
            hours=61.5,
        ),
    }
