"""The durable follow-up record: strict validation of what is read back from the cluster.

Aspects covered:
* a record survives its JSON round trip unchanged (what one replica writes, another reads);
* hand edits are refused whole, naming the field: an unknown key, a naive time, a wrong type, a negative
  count, horizons out of order, another version;
* the ConfigMap name is deterministic per workload and valid however long the workload's name is;
* horizons are labelled as people say them.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

import pydantic
import pytest

from responder.models import follow_ups, settings, targets

T0 = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.UTC)


def sample() -> follow_ups.FollowUp:
    return follow_ups.FollowUp(
        kind=targets.WorkloadKind.DEPLOYMENT,
        namespace="shop",
        name="web",
        uid="u-1",
        incident="abc@2026-03-01T11:59:00Z",
        playbook="oom-raise-memory",
        action=settings.Action.RAISE_MEMORY,
        acted_at=T0,
        horizons=(follow_ups.Horizon(seconds=3600, due_at=T0 + datetime.timedelta(hours=1)),),
        schedule=follow_ups.Schedule(
            playbook="oom-raise-memory",
            incident="abc@2026-03-01T11:59:00Z",
            interval_seconds=21600,
            next_at=T0 + datetime.timedelta(hours=6),
            expires_at=T0 + datetime.timedelta(days=7),
            images={"app": "shop/web:1.2.2"},
        ),
        claim=follow_ups.Claim(holder="replica-a", until=T0 + datetime.timedelta(minutes=2)),
    )


def edited(path: list[str], value: Any) -> str:
    data = json.loads(sample().model_dump_json())
    holder = data
    for key in path[:-1]:
        holder = holder[key]
    holder[path[-1]] = value
    return json.dumps(data)


def test_a_record_survives_its_json_round_trip() -> None:
    record = sample()
    assert follow_ups.FollowUp.model_validate_json(record.model_dump_json()) == record


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        pytest.param(["surprise"], 1, "surprise", id="unknown-key"),
        pytest.param(["acted_at"], "2026-03-01T12:00:00", "acted_at", id="naive-time"),
        pytest.param(["schedule", "count"], -1, "schedule.count", id="negative-count"),
        pytest.param(
            ["schedule", "interval_seconds"], "6h", "schedule.interval_seconds", id="string-interval"
        ),
        pytest.param(["action"], "reboot_cluster", "action", id="unknown-action"),
        pytest.param(["version"], 2, "version", id="other-version"),
        pytest.param(["kind"], "CronJob", "kind", id="unknown-kind"),
    ],
)
def test_hand_edits_are_refused_naming_the_field(path: list[str], value: Any, field: str) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        follow_ups.FollowUp.model_validate_json(edited(path, value))
    locations = [".".join(str(p) for p in error["loc"]) for error in caught.value.errors()]
    assert any(location.startswith(field) for location in locations), locations


def test_horizons_out_of_order_are_refused() -> None:
    data = json.loads(sample().model_dump_json())
    data["horizons"] = [
        {"seconds": 7200, "due_at": "2026-03-01T14:00:00Z", "verdict": None},
        {"seconds": 3600, "due_at": "2026-03-01T13:00:00Z", "verdict": None},
    ]
    with pytest.raises(pydantic.ValidationError, match="order"):
        follow_ups.FollowUp.model_validate_json(json.dumps(data))


def test_the_record_name_is_deterministic_and_valid_for_long_workload_names() -> None:
    long = targets.Target(targets.WorkloadKind.STATEFUL_SET, "ns", "x" * 253)
    name = follow_ups.record_name(long)
    assert name == follow_ups.record_name(long)
    assert len(name) <= 63 and name.startswith("oom-responder-follow-")
    assert name != follow_ups.record_name(targets.Target(targets.WorkloadKind.DEPLOYMENT, "ns", "x" * 253))


@pytest.mark.parametrize(
    ("seconds", "label"), [(3600, "1h"), (172800, "48h"), (5400, "90m"), (30, "30s"), (2.5, "2.5s")]
)
def test_horizons_are_labelled_as_people_say_them(seconds: float, label: str) -> None:
    assert follow_ups.horizon_label(seconds) == label
