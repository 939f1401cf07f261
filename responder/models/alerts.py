"""Alertmanager webhook payloads (version 4) and the normalized alert the pipeline works on.

Data only. Payload models ignore unknown fields because Alertmanager adds fields between releases
(`notification_reason` arrived after v0.25); optional fields may be missing.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
from collections.abc import Mapping

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


@dataclasses.dataclass(frozen=True, slots=True)
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

    def __post_init__(self) -> None:
        # Frozen: the generated __setattr__ refuses, so set the derived slot the way dataclasses itself does.
        object.__setattr__(
            self, "occurrence_id", f"{self.fingerprint}@{self.starts_at.astimezone(datetime.UTC).isoformat()}"
        )
