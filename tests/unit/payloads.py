"""Alertmanager webhook bodies for tests, shaped like what Alertmanager v0.25 sends."""

from __future__ import annotations

from typing import Any

STARTS_AT = "2024-05-01T10:00:00.000Z"


def alert(
    alertname: str = "OOMKilled",
    *,
    status: str = "firing",
    namespace: str | None = "shop",
    pod: str | None = "api-7d9c-x1",
    container: str | None = "api",
    fingerprint: str | None = "a1b2c3d4e5f60718",
    starts_at: str = STARTS_AT,
    **labels: str,
) -> dict[str, Any]:
    all_labels = {"alertname": alertname, "severity": "critical", **labels}
    for name, value in (("namespace", namespace), ("pod", pod), ("container", container)):
        if value is not None:
            all_labels[name] = value
    body: dict[str, Any] = {
        "status": status,
        "labels": all_labels,
        "annotations": {"summary": f"{alertname} in {namespace}/{pod}"},
        "startsAt": starts_at,
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2024-05-01T10:05:00.000Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
    }
    if fingerprint is not None:
        body["fingerprint"] = fingerprint
    return body


def payload(*alerts: dict[str, Any], status: str | None = None) -> dict[str, Any]:
    if status is None:
        status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    return {
        "version": "4",
        "groupKey": '{}:{alertname="OOMKilled"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "oom-responder",
        "groupLabels": {"alertname": "OOMKilled"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
    }
