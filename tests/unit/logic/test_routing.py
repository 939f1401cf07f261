"""Routing events to playbooks, queue keys and label-only targets.

Covers: first matching playbook in file order; kind must be listed; matchers must hold; no playbook → None;
the prevention alert PodMemoryTrendingToOOM goes to the memory-high playbook by default; the queue key prefers
the workload label over the pod; the target from labels; playbooks restricted to memory patterns answer only
those patterns and are skipped without an analysis.
"""

from __future__ import annotations

import pytest

from responder.logic import normalizing, routing
from responder.models import alerts, settings, targets
from responder.models.analyses import Pattern
from tests.unit import payloads

CONFIG = settings.Settings.model_validate(
    {
        "playbooks": [
            {
                "name": "critical-only",
                "alerts": ["oom_killed"],
                "matchers": ['tier="critical"'],
                "actions": ["evict_pod"],
            },
            {
                "name": "oom",
                "alerts": ["oom_killed"],
                "matchers": ['namespace!~"kube-.*"'],
                "actions": [{"raise_memory": {}}],
            },
            {"name": "high", "alerts": ["memory_high"], "actions": [{"scale_out": {}}]},
        ]
    }
)


def _event(alert: dict[str, object]) -> alerts.AlertEvent:
    payload = alerts.WebhookPayload.model_validate(payloads.payload(alert))
    event = normalizing.normalize(payload.alerts[0], payload=payload, settings=CONFIG)
    assert event is not None
    return event


def test_the_first_matching_playbook_wins() -> None:
    playbook = routing.route(_event(payloads.alert("OOMKilled", tier="critical")), CONFIG.playbooks)
    assert playbook is not None and playbook.name == "critical-only"


def test_later_playbooks_are_fallbacks_when_matchers_fail() -> None:
    playbook = routing.route(_event(payloads.alert("OOMKilled")), CONFIG.playbooks)
    assert playbook is not None and playbook.name == "oom"


def test_no_playbook_when_matchers_exclude_the_alert() -> None:
    assert (
        routing.route(_event(payloads.alert("OOMKilled", namespace="kube-system")), CONFIG.playbooks) is None
    )


def test_no_playbook_for_a_kind_none_answers() -> None:
    assert routing.route(_event(payloads.alert("PodRestartingFrequently")), CONFIG.playbooks) is None


def test_the_trend_alert_is_answered_by_the_memory_high_playbook_by_default() -> None:
    defaults = settings.Settings()
    payload = alerts.WebhookPayload.model_validate(payloads.payload(payloads.alert("PodMemoryTrendingToOOM")))
    event = normalizing.normalize(payload.alerts[0], payload=payload, settings=defaults)
    assert event is not None and event.kind is settings.AlertKind.MEMORY_HIGH
    playbook = routing.route(event, defaults.playbooks)
    assert playbook is not None and playbook.name == "memory-high-scale-out"


def test_the_queue_key_prefers_the_workload_label() -> None:
    alerts_settings = CONFIG.alerts
    assert routing.queue_key(_event(payloads.alert(workload="api")), settings=alerts_settings) == "shop/api"
    assert routing.queue_key(_event(payloads.alert()), settings=alerts_settings) == "shop/api-7d9c-x1"
    no_pod = _event(payloads.alert(pod=None, namespace=None))
    assert routing.queue_key(no_pod, settings=alerts_settings) == "-/fingerprint:a1b2c3d4e5f60718"


def test_the_target_from_labels() -> None:
    alerts_settings = CONFIG.alerts
    named = routing.target_from_labels(
        _event(payloads.alert(workload="node-agent", workload_kind="DaemonSet")), settings=alerts_settings
    )
    assert named == targets.Target(kind=targets.WorkloadKind.DAEMON_SET, namespace="shop", name="node-agent")
    pod = routing.target_from_labels(_event(payloads.alert()), settings=alerts_settings)
    assert pod == targets.Target(kind=targets.WorkloadKind.POD, namespace="shop", name="api-7d9c-x1")
    assert (
        routing.target_from_labels(_event(payloads.alert(namespace=None)), settings=alerts_settings) is None
    )


def _pattern_playbooks() -> list[settings.Playbook]:
    return [
        settings.Playbook.model_validate(
            {"name": "oom-spike", "alerts": ["oom_killed"], "pattern": ["spike"], "actions": ["evict_pod"]}
        ),
        settings.Playbook.model_validate(
            {
                "name": "oom-leak",
                "alerts": ["oom_killed"],
                "pattern": ["linear_leak", "sawtooth_leak"],
                "actions": [{"raise_memory": {}}],
            }
        ),
        settings.Playbook.model_validate(
            {"name": "oom-raise-memory", "alerts": ["oom_killed"], "actions": [{"raise_memory": {}}]}
        ),
    ]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        pytest.param(None, "oom-raise-memory", id="no-analysis"),
        pytest.param(Pattern.SPIKE, "oom-spike", id="spike"),
        pytest.param(Pattern.SAWTOOTH_LEAK, "oom-leak", id="sawtooth"),
        pytest.param(Pattern.STABLE, "oom-raise-memory", id="stable-falls-through"),
        pytest.param(Pattern.INSUFFICIENT_DATA, "oom-raise-memory", id="insufficient-falls-through"),
    ],
)
def test_a_playbook_restricted_to_patterns_answers_only_those(pattern: Pattern | None, expected: str) -> None:
    playbook = routing.route(_event(payloads.alert("OOMKilled")), _pattern_playbooks(), pattern=pattern)
    assert playbook is not None
    assert playbook.name == expected
