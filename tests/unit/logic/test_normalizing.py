"""Normalizing Alertmanager alerts into AlertEvents.

Covers: kind from the configurable alert-name mapping; unmapped and missing alert names; configurable label
names; empty labels read as absent; the occurrence id, derived again when the fingerprint or start is replaced;
a stable fingerprint derived when Alertmanager sends none; kube-prometheus's `workload`/`workload_type`
labels understood by default (an explicit workload_kind label wins; the type label can be turned off).
"""

from __future__ import annotations

import dataclasses
import datetime

from responder.logic import normalizing, routing
from responder.models import alerts, settings, targets
from tests.unit import payloads


def _normalize(alert: dict[str, object], config: settings.Settings | None = None) -> alerts.AlertEvent | None:
    payload = alerts.WebhookPayload.model_validate(payloads.payload(alert))
    return normalizing.normalize(payload.alerts[0], payload=payload, settings=config or settings.Settings())


def test_builds_the_event_from_labels() -> None:
    event = _normalize(payloads.alert("OOMKilled"))
    assert event is not None
    assert event.kind is settings.AlertKind.OOM_KILLED
    assert (event.namespace, event.pod, event.container, event.severity) == (
        "shop",
        "api-7d9c-x1",
        "api",
        "critical",
    )
    assert event.fingerprint == "a1b2c3d4e5f60718"
    assert event.external_url == "http://alertmanager:9093"
    assert event.occurrence_id == "a1b2c3d4e5f60718@2024-05-01T10:00:00+00:00"


def test_an_unmapped_alert_name_gives_none() -> None:
    assert _normalize(payloads.alert("CPUThrottlingHigh")) is None


def test_an_alert_without_alertname_gives_none() -> None:
    alert = payloads.alert()
    del alert["labels"]["alertname"]
    assert _normalize(alert) is None


def test_kube_prometheus_names_and_labels_can_be_mapped_in() -> None:
    config = settings.Settings.model_validate(
        {"alerts": {"names": {"KubePodCrashLooping": "restarting_frequently"}, "pod_label": "exported_pod"}}
    )
    event = _normalize(payloads.alert("KubePodCrashLooping", pod=None, exported_pod="worker-0"), config)
    assert event is not None
    assert event.kind is settings.AlertKind.RESTARTING_FREQUENTLY
    assert event.pod == "worker-0"


def test_empty_labels_read_as_absent() -> None:
    event = _normalize(payloads.alert(container=""))
    assert event is not None
    assert event.container is None


def test_a_missing_fingerprint_is_derived_from_the_sorted_label_set() -> None:
    first = _normalize(payloads.alert(fingerprint=None))
    assert first is not None
    assert len(first.fingerprint) == 16
    reordered = payloads.alert(fingerprint=None)
    reordered["labels"] = dict(reversed(list(reordered["labels"].items())))
    second = _normalize(reordered)
    assert second is not None
    assert second.fingerprint == first.fingerprint
    other = _normalize(payloads.alert(fingerprint=None, pod="api-7d9c-x2"))
    assert other is not None
    assert other.fingerprint != first.fingerprint


def test_the_occurrence_id_is_the_same_in_any_time_zone() -> None:
    utc = _normalize(payloads.alert(starts_at="2024-05-01T10:00:00Z"))
    shifted = _normalize(payloads.alert(starts_at="2024-05-01T12:00:00+02:00"))
    assert utc is not None and shifted is not None
    assert utc.occurrence_id == shifted.occurrence_id
    assert utc.starts_at == datetime.datetime(2024, 5, 1, 10, tzinfo=datetime.UTC)


def test_the_occurrence_id_follows_a_replaced_fingerprint_or_start_and_is_not_part_of_equality() -> None:
    event = _normalize(payloads.alert(fingerprint="f1", starts_at="2024-05-01T12:00:00.5+02:00"))
    assert event is not None
    assert event.occurrence_id == "f1@2024-05-01T10:00:00.500000+00:00"
    later = dataclasses.replace(event, starts_at=datetime.datetime(2024, 5, 1, 11, tzinfo=datetime.UTC))
    assert later.occurrence_id == "f1@2024-05-01T11:00:00+00:00"
    assert dataclasses.replace(event, fingerprint="f2").occurrence_id == "f2@2024-05-01T10:00:00.500000+00:00"
    assert dataclasses.replace(event) == event
    assert "occurrence_id" not in repr(event)


def test_kube_prometheus_workload_and_workload_type_labels_are_understood_by_default() -> None:
    # What `namespace_workload_pod:kube_pod_owner:relabel` joins put on an alert.
    event = _normalize(payloads.alert("OOMKilled", pod=None, workload="api", workload_type="deployment"))
    assert event is not None
    assert event.labels["workload_kind"] == "Deployment"
    target = routing.target_from_labels(event, settings=settings.AlertsSettings())
    assert target is not None
    assert (target.kind, target.namespace, target.name) == (targets.WorkloadKind.DEPLOYMENT, "shop", "api")
    stateful = _normalize(payloads.alert(workload="db", workload_type="statefulset"))
    assert stateful is not None
    assert stateful.labels["workload_kind"] == "StatefulSet"


def test_an_explicit_workload_kind_label_wins_and_the_type_label_can_be_turned_off() -> None:
    event = _normalize(
        payloads.alert(workload="api", workload_kind="StatefulSet", workload_type="deployment")
    )
    assert event is not None
    assert event.labels["workload_kind"] == "StatefulSet"
    off = settings.Settings.model_validate({"alerts": {"workload_type_label": ""}})
    ignored = _normalize(payloads.alert(workload="api", workload_type="deployment"), off)
    assert ignored is not None
    assert "workload_kind" not in ignored.labels
