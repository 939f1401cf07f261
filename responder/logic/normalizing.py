"""Normalizing: an Alertmanager alert becomes an `AlertEvent` the rest of the pipeline understands.

Pure: everything it needs is passed in; it must not look at the cluster, the clock or the environment.
Alert and label names come from `settings.alerts`, so kube-prometheus names can be mapped in.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Mapping

from responder.models import alerts, decisions, settings

__all__ = ["derive_fingerprint", "kind_of", "normalize", "refuse"]

_ALERTNAME = "alertname"

# kube-prometheus's `workload_type` values (lowercase) → Kubernetes kinds.
_KINDS = {
    "deployment": "Deployment",
    "statefulset": "StatefulSet",
    "daemonset": "DaemonSet",
    "replicaset": "ReplicaSet",
    "job": "Job",
    "cronjob": "CronJob",
}


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
    event_labels = labels  # the payload's own dict: nothing changes it, and a copy per alert is not free
    owner_type = labels.get(names.workload_type_label) if names.workload_type_label else None
    if owner_type and not labels.get(names.workload_kind_label):
        # kube-prometheus names the owner kind in lowercase under its own label: the rest of the pipeline
        # reads one label with the Kubernetes kind.
        event_labels = {**labels, names.workload_kind_label: _KINDS.get(owner_type.lower(), owner_type)}
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
        labels=event_labels,
        annotations=alert.annotations,
        generator_url=alert.generator_url,
        external_url=payload.external_url,
    )


# Kubernetes' own name rules (apimachinery validation): a DNS-1123 label for namespaces and containers, a
# DNS-1123 subdomain for pods and workloads. Anything else cannot name an object, and some of it would change
# the API path it is put in: ".." and "." survive URL quoting and collapse the path (a GET of the Namespace
# instead of a Pod, a cluster-wide list instead of a namespace's).
_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL = re.compile(_LABEL)
_DNS1123_SUBDOMAIN = re.compile(rf"{_LABEL}(\.{_LABEL})*")
_LABEL_MAX = 63
_SUBDOMAIN_MAX = 253
_SHOWN_MAX = 80
"""How much of a refused value is repeated in the reason: enough to recognise it, never a whole payload."""


def _name_problem(value: str, *, subdomain: bool) -> str | None:
    limit, pattern, rule = (
        (_SUBDOMAIN_MAX, _DNS1123_SUBDOMAIN, "a DNS-1123 subdomain (lower-case letters, digits, '-', '.')")
        if subdomain
        else (_LABEL_MAX, _DNS1123_LABEL, "a DNS-1123 label (lower-case letters, digits, '-')")
    )
    if len(value) > limit:
        return f"is longer than {limit} characters"
    # fullmatch: an anchored "$" would also accept a name followed by a newline.
    if pattern.fullmatch(value) is None:
        return f"is not {rule}"
    return None


@functools.lru_cache(maxsize=1024)
def _short_label_problem(value: str) -> str | None:
    # Namespaces and container names repeat from alert to alert (pod names do not): each is checked once.
    # Only names short enough to be valid are remembered, so the cache holds at most 1024 × 63 characters.
    return _name_problem(value, subdomain=False)


def _label_problem(value: str) -> str | None:
    if len(value) > _LABEL_MAX:
        return _name_problem(value, subdomain=False)
    return _short_label_problem(value)


def refuse(event: alerts.AlertEvent, *, settings: settings.Settings) -> decisions.Decision | None:
    """Why the event must not reach the API server at all, or None when it may.

    Every name the pipeline would put into an API path is checked the way Kubernetes validates it, and with
    `kubernetes.namespaces` set (a namespaced install) the namespace must be one of those granted: any other
    would only earn a 403 after the request, reported as a failed mitigation.
    """
    names = settings.alerts
    namespace, pod, container = event.namespace, event.pod, event.container
    workload = event.labels.get(names.workload_name_label) or None
    # Nearly every alert names valid objects: that is checked first, without building anything per alert.
    if (
        (namespace is None or _label_problem(namespace) is None)
        and (pod is None or _is_subdomain(pod))
        and (container is None or _label_problem(container) is None)
        and (workload is None or _is_subdomain(workload))
    ):
        return _scope_refusal(namespace, settings=settings)
    checked = (
        (names.namespace_label, namespace, False),
        (names.pod_label, pod, True),
        (names.container_label, container, False),
        (names.workload_name_label, workload, True),
    )
    for label, value, subdomain in checked:
        if value is None:
            continue
        problem = _name_problem(value, subdomain=True) if subdomain else _label_problem(value)
        if problem is not None:
            shown = value if len(value) <= _SHOWN_MAX else value[:_SHOWN_MAX] + "…"
            return decisions.Decision.refuse(
                decisions.Reason.INVALID_NAME, f"label {label}={shown!r} {problem}: it names no object"
            )
    return _scope_refusal(namespace, settings=settings)


def _is_subdomain(value: str) -> bool:
    return len(value) <= _SUBDOMAIN_MAX and _DNS1123_SUBDOMAIN.fullmatch(value) is not None


def _scope_refusal(namespace: str | None, *, settings: settings.Settings) -> decisions.Decision | None:
    granted = settings.kubernetes.namespaces
    if granted and namespace is not None and namespace not in granted:
        return decisions.Decision.refuse(
            decisions.Reason.OUT_OF_SCOPE,
            f"namespace {namespace!r} is not one of kubernetes.namespaces ({', '.join(granted)}): "
            "the service has no access there",
        )
    return None
