"""Normalizing: an Alertmanager alert becomes an `AlertEvent` the rest of the pipeline understands.

Pure: everything it needs is passed in; it must not look at the cluster, the clock or the environment.
Alert and label names come from `settings.alerts`, so kube-prometheus names can be mapped in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from responder.models import alerts, settings

__all__ = ["derive_fingerprint", "kind_of", "normalize"]

_ALERTNAME = "alertname"


def derive_fingerprint(labels: Mapping[str, str]) -> str:
    """A stable stand-in for Alertmanager's fingerprint, for senders that do not include one (before v0.19).

    It is a hash of the sorted label set, like Alertmanager's own, so the same alert keeps the same value
    across repeats and across replicas of this service.
    """
    text = "\xff".join(f"{name}={labels[name]}" for name in sorted(labels))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def kind_of(labels: Mapping[str, str], *, settings: settings.Settings) -> settings.AlertKind | None:
    """What the alert means, from its `alertname`; None for alerts the service has no name mapping for."""
    name = labels.get(_ALERTNAME)
    if name is None:
        return None
    return settings.alerts.names.get(name)


def normalize(
    alert: alerts.Alert, *, payload: alerts.WebhookPayload, settings: settings.Settings
) -> alerts.AlertEvent | None:
    """The event for one alert of a webhook payload, or None when its alert name maps to no kind."""
    kind = kind_of(alert.labels, settings=settings)
    if kind is None:
        return None
    names = settings.alerts
    labels = alert.labels
    return alerts.AlertEvent(
        kind=kind,
        alertname=labels[_ALERTNAME],
        status=alert.status,
        fingerprint=alert.fingerprint or derive_fingerprint(labels),
        starts_at=alert.starts_at,
        namespace=labels.get(names.namespace_label) or None,
        pod=labels.get(names.pod_label) or None,
        container=labels.get(names.container_label) or None,
        severity=labels.get(names.severity_label) or None,
        labels=dict(labels),
        annotations=dict(alert.annotations),
        generator_url=alert.generator_url,
        external_url=payload.external_url,
    )
