"""Alertmanager webhook payloads (version 4) and the normalized alert the pipeline works on.

Data only. Payload models ignore unknown fields because Alertmanager adds fields between releases
(`notification_reason` arrived after v0.25); optional fields may be missing.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
from collections.abc import Callable, Mapping
from typing import Any

import pydantic
from pydantic import Field

from responder.models import settings

__all__ = ["Alert", "AlertEvent", "AlertStatus", "WebhookPayload"]


class AlertStatus(enum.StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class _Payload(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class Alert(_Payload):
    status: AlertStatus
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime.datetime = Field(alias="startsAt")
    # Alertmanager sends "0001-01-01T00:00:00Z" for alerts without an end: keep it as it is.
    ends_at: datetime.datetime | None = Field(None, alias="endsAt")
    generator_url: str = Field("", alias="generatorURL")
    fingerprint: str | None = None


class WebhookPayload(_Payload):
    version: str
    group_key: str = Field(alias="groupKey")
    truncated_alerts: int = Field(0, alias="truncatedAlerts", ge=0)
    status: AlertStatus
    receiver: str
    group_labels: dict[str, str] = Field(default_factory=dict, alias="groupLabels")
    common_labels: dict[str, str] = Field(default_factory=dict, alias="commonLabels")
    common_annotations: dict[str, str] = Field(default_factory=dict, alias="commonAnnotations")
    external_url: str = Field("", alias="externalURL")
    notification_reason: str | None = None
    alerts: list[Alert]

    @pydantic.field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        if value != "4":
            raise ValueError(f'unsupported webhook version {value!r}: want "4"')
        return value


@dataclasses.dataclass(frozen=True, slots=True, init=False)
class AlertEvent:
    """One alert as the pipeline sees it, whatever the alert and label names were in the cluster."""

    kind: settings.AlertKind
    alertname: str
    status: AlertStatus
    fingerprint: str
    starts_at: datetime.datetime
    namespace: str | None
    pod: str | None
    container: str | None
    severity: str | None
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    generator_url: str
    external_url: str
    occurrence_id: str = dataclasses.field(init=False, repr=False, compare=False)
    """One firing of one alert: Alertmanager keeps startsAt across repeats and HA peers. Derived from
    `fingerprint` and `starts_at` once, at construction (`dataclasses.replace` derives it again): it is read
    several times per alert on the ingest path, and the UTC conversion and formatting are not free."""

    def __init__(
        self,
        *,
        kind: settings.AlertKind,
        alertname: str,
        status: AlertStatus,
        fingerprint: str,
        starts_at: datetime.datetime,
        namespace: str | None,
        pod: str | None,
        container: str | None,
        severity: str | None,
        labels: Mapping[str, str],
        annotations: Mapping[str, str],
        generator_url: str,
        external_url: str,
    ) -> None:
        # One is made for every alert received. The generated __init__ of a frozen dataclass sets each field
        # through object.__setattr__ (the instance's own __setattr__ refuses); writing the slots through their
        # descriptors directly, which is where that call ends, costs a third as much.
        _set_kind(self, kind)
        _set_alertname(self, alertname)
        _set_status(self, status)
        _set_fingerprint(self, fingerprint)
        _set_starts_at(self, starts_at)
        _set_namespace(self, namespace)
        _set_pod(self, pod)
        _set_container(self, container)
        _set_severity(self, severity)
        _set_labels(self, labels)
        _set_annotations(self, annotations)
        _set_generator_url(self, generator_url)
        _set_external_url(self, external_url)
        _set_occurrence_id(self, f"{fingerprint}@{starts_at.astimezone(datetime.UTC).isoformat()}")


def _slot_setter(name: str) -> Callable[[AlertEvent, Any], None]:
    setter: Callable[[AlertEvent, Any], None] = getattr(AlertEvent, name).__set__
    return setter


# By name: a field moved in the class cannot be written to another's slot. A field added must be set in
# __init__ too (tests/unit/models/test_alerts.py constructs one and reads every field).
_set_kind = _slot_setter("kind")
_set_alertname = _slot_setter("alertname")
_set_status = _slot_setter("status")
_set_fingerprint = _slot_setter("fingerprint")
_set_starts_at = _slot_setter("starts_at")
_set_namespace = _slot_setter("namespace")
_set_pod = _slot_setter("pod")
_set_container = _slot_setter("container")
_set_severity = _slot_setter("severity")
_set_labels = _slot_setter("labels")
_set_annotations = _slot_setter("annotations")
_set_generator_url = _slot_setter("generator_url")
_set_external_url = _slot_setter("external_url")
_set_occurrence_id = _slot_setter("occurrence_id")
