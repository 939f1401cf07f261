"""The normalized alert (models.alerts.AlertEvent).

Covers: every field is set by its constructor (it writes the slots itself, for speed), the derived
occurrence id is fingerprint@startsAt in UTC, `dataclasses.replace` derives it again, and the event stays
frozen.
"""

from __future__ import annotations

import dataclasses
import datetime

import pytest

from responder.models import alerts, settings


def _event(**changes: object) -> alerts.AlertEvent:
    fields: dict[str, object] = {
        "kind": settings.AlertKind.OOM_KILLED,
        "alertname": "OOMKilled",
        "status": alerts.AlertStatus.FIRING,
        "fingerprint": "f1",
        "starts_at": datetime.datetime(2024, 5, 1, 12, tzinfo=datetime.timezone(datetime.timedelta(hours=2))),
        "namespace": "shop",
        "pod": "api-1",
        "container": "app",
        "severity": "critical",
        "labels": {"alertname": "OOMKilled"},
        "annotations": {"summary": "s"},
        "generator_url": "http://prometheus/graph",
        "external_url": "http://alertmanager",
    }
    fields.update(changes)
    return alerts.AlertEvent(**fields)  # type: ignore[arg-type]  # the test's own mixed-type table


def test_every_field_is_set_by_the_constructor() -> None:
    event = _event()
    values = {field.name: getattr(event, field.name) for field in dataclasses.fields(event)}
    assert values["pod"] == "api-1" and values["container"] == "app" and values["severity"] == "critical"
    assert (
        values["generator_url"] == "http://prometheus/graph"
        and values["external_url"] == "http://alertmanager"
    )
    assert all(field.name in values for field in dataclasses.fields(event))


def test_the_occurrence_id_is_the_fingerprint_at_the_start_in_utc() -> None:
    assert _event().occurrence_id == "f1@2024-05-01T10:00:00+00:00"


def test_replace_derives_the_occurrence_id_again_and_equal_events_compare_equal() -> None:
    event = _event()
    assert dataclasses.replace(event, fingerprint="f2").occurrence_id == "f2@2024-05-01T10:00:00+00:00"
    assert dataclasses.replace(event) == event


def test_an_event_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        _event().pod = "other"  # type: ignore[misc]
