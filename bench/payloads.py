"""Alertmanager v4 webhook payloads for the benchmarks: realistic labels, distinct fingerprints.

A payload is built once as a byte template; every request substitutes a fresh sequence number into it
(`bytes.replace`, done in C), so each alert of each request has a fingerprint never sent before without
paying for JSON encoding in the load generator's hot loop.
"""

from __future__ import annotations

import datetime
import itertools
import json
import random
from typing import Any

__all__ = ["SEQ", "alert", "new_run", "payload", "render", "template"]

SEQ = b"SEQSEQSE"
"""Placeholder for an 8-hex-digit request sequence number inside a template."""

_STARTS_AT = "2026-01-01T00:00:00Z"

# Runs of one benchmark process start at a random point: a server kept across processes sees other runs too.
_runs = itertools.count(random.randrange(0x10000))


def new_run() -> int:
    """A run number for `template` not used before by this process (wraps after 65,536 runs)."""
    return next(_runs) & 0xFFFF


def alert(
    *,
    alertname: str,
    namespace: str,
    pod: str,
    container: str,
    fingerprint: str,
    severity: str = "critical",
    starts_at: str = _STARTS_AT,
    extra_labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One alert as Alertmanager v0.25 sends it (kube-prometheus style labels and annotations)."""
    labels = {
        "alertname": alertname,
        "namespace": namespace,
        "pod": pod,
        "container": container,
        "severity": severity,
        "job": "kube-state-metrics",
        "prometheus": "monitoring/k8s",
        "reason": "OOMKilled" if alertname == "OOMKilled" else "",
    }
    labels = {k: v for k, v in labels.items() if v}
    labels.update(extra_labels or {})
    summary = (
        f"Container {container} in pod {namespace}/{pod} was OOMKilled"
        if alertname == "OOMKilled"
        else f"Container {container} in pod {namespace}/{pod} uses over 90% of its memory limit"
    )
    return {
        "status": "firing",
        "labels": labels,
        "annotations": {
            "summary": summary,
            "description": summary + ". See runbook RB-010.",
            "runbook_url": "https://runbooks.example.com/RB-010",
        },
        "startsAt": starts_at,
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.monitoring:9090/graph?g0.expr=kube_pod_container_status_last_terminated_reason",
        "fingerprint": fingerprint,
    }


def payload(alerts: list[dict[str, Any]], *, receiver: str = "oom-responder") -> dict[str, Any]:
    """Wrap alerts into one webhook notification (one group)."""
    common = dict(alerts[0]["labels"]) if alerts else {}
    for a in alerts[1:]:
        common = {k: v for k, v in common.items() if a["labels"].get(k) == v}
    return {
        "version": "4",
        "groupKey": '{}/{severity=~"warning|critical"}:{alertname="OOMKilled"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": receiver,
        "groupLabels": {"alertname": alerts[0]["labels"]["alertname"]} if alerts else {},
        "commonLabels": common,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.monitoring:9093",
        "alerts": alerts,
    }


def template(n_alerts: int, *, run: int = 0, namespaces: int = 10) -> bytes:
    """A payload of `n_alerts` alerts whose fingerprints and pod names carry the SEQ placeholder.

    Alerts alternate OOMKilled / PodMemoryHigh, spread over `namespaces` namespaces; every alert is on its own
    pod. A fingerprint is the request's sequence number, the `run` (0-65535) and the alert's index: two loads
    with different runs (a warm-up and the measured run against one server) never repeat an occurrence, so
    nothing is a duplicate of anything sent before.
    """
    if not 0 <= run <= 0xFFFF or n_alerts > 0x10000:
        raise ValueError("run must fit 4 hex digits and the alert index 4 more")
    seq = SEQ.decode()
    alerts = []
    for i in range(n_alerts):
        name = "OOMKilled" if i % 2 == 0 else "PodMemoryHigh"
        alerts.append(
            alert(
                alertname=name,
                namespace=f"team-{i % namespaces}",
                pod=f"api-{seq}-{i:03d}-7d9c",
                container="app",
                # Alertmanager fingerprints are 16 hex digits.
                fingerprint=f"{seq}{run:04x}{i:04x}",
                severity="critical" if name == "OOMKilled" else "warning",
            )
        )
    return json.dumps(payload(alerts), separators=(",", ":")).encode()


def render(tmpl: bytes, seq: int) -> bytes:
    """The template with its placeholder replaced by `seq` (8 hex digits; wraps after 2**32)."""
    return tmpl.replace(SEQ, b"%08x" % (seq & 0xFFFFFFFF))


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
