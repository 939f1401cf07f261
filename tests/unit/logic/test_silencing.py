"""Which silence to keep while a mitigation works.

Covers: the matchers (alertname, namespace, container, the workload's pods by kind, the workload label when
the alert carries it, the playbook's own matchers so unhandled alerts stay audible), pod patterns that never
match a sibling workload's pods, the duration (the action's cooldown, at least the minimum), the comment
pointing at the ledger, and every case in which no silence is made.
"""

from __future__ import annotations

import dataclasses
import datetime
import re

import pytest

from responder.logic import silencing
from responder.models import alerts, decisions, diagnostics, settings, targets

NOW = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.UTC)
WEB = targets.Target(targets.WorkloadKind.DEPLOYMENT, "shop", "web")
AM = {"alertmanager": {"url": "http://127.0.0.1:9093"}}


def event(
    *,
    pod: str | None = "web-7d9f8b6c5-x2kqz",
    labels: dict[str, str] | None = None,
    container: str | None = "app",
) -> alerts.AlertEvent:
    return alerts.AlertEvent(
        kind=settings.AlertKind.OOM_KILLED,
        alertname="OOMKilled",
        status=alerts.AlertStatus.FIRING,
        fingerprint="f00d",
        starts_at=NOW - datetime.timedelta(minutes=5),
        namespace="shop",
        pod=pod,
        container=container,
        severity="critical",
        labels=labels or {},
        annotations={},
        generator_url="",
        external_url="",
    )


def playbook(*matchers: str) -> settings.Playbook:
    return settings.Playbook.model_validate(
        {"name": "oom", "alerts": ["oom_killed"], "matchers": list(matchers), "actions": ["raise_memory"]}
    )


def as_tuples(found: tuple[diagnostics.SilenceMatcher, ...]) -> list[tuple[str, str, bool, bool]]:
    return [(m.name, m.value, m.is_regex, m.is_equal) for m in found]


def test_matches_the_alert_on_the_workloads_pods_and_container() -> None:
    found = silencing.matchers_for(
        event=event(), target=WEB, playbook=playbook(), labels=settings.AlertsSettings()
    )
    pattern = silencing.pod_pattern(WEB)
    assert as_tuples(found) == [
        ("alertname", "OOMKilled", False, True),
        ("namespace", "shop", False, True),
        ("pod", pattern, True, True),
        ("container", "app", False, True),
    ]


@pytest.mark.parametrize(
    ("kind", "name", "pods", "others"),
    [
        pytest.param(
            targets.WorkloadKind.DEPLOYMENT,
            "web",
            ["web-7d9f8b6c5-x2kqz", "web-5b9c-z9z9z"],
            ["web-api-0", "web-api-7d9f8b6c5-x2kqz", "web-x2kqz", "webx-7d9f8b6c5-x2kqz"],
            id="deployment",
        ),
        pytest.param(
            targets.WorkloadKind.STATEFUL_SET,
            "db",
            ["db-0", "db-12"],
            ["db-replica-0", "db-x2kqz", "db-"],
            id="statefulset",
        ),
        pytest.param(
            targets.WorkloadKind.DAEMON_SET,
            "agent.v2",
            ["agent.v2-x2kqz"],
            ["agentxv2-x2kqz", "agent.v2-7d9f8b6c5-x2kqz", "agent.v2-0"],
            id="daemonset-dot-is-literal",
        ),
    ],
)
def test_pod_patterns_cover_the_workloads_pods_and_no_siblings(
    kind: targets.WorkloadKind, name: str, pods: list[str], others: list[str]
) -> None:
    pattern = silencing.pod_pattern(targets.Target(kind, "shop", name))
    assert pattern is not None
    # Alertmanager anchors regex matchers; fullmatch does the same.
    assert all(re.fullmatch(pattern, pod) for pod in pods)
    assert not any(re.fullmatch(pattern, pod) for pod in others)


def test_a_bare_pod_or_a_truncated_name_silences_only_the_pod_that_alerted() -> None:
    long_name = "a-very-long-deployment-name-that-the-api-server-truncates-x"
    long = targets.Target(targets.WorkloadKind.DEPLOYMENT, "shop", long_name)
    assert silencing.pod_pattern(long) is None
    found = silencing.matchers_for(
        event=event(pod="a-very-long-deployment-name-that-the-api-server-trunca-x2kqz"),
        target=long,
        playbook=playbook(),
        labels=settings.AlertsSettings(),
    )
    assert ("pod", "a-very-long-deployment-name-that-the-api-server-trunca-x2kqz", False, True) in as_tuples(
        found
    )


def test_uses_the_workload_label_when_the_alert_carries_it() -> None:
    found = silencing.matchers_for(
        event=event(labels={"workload": "web"}),
        target=WEB,
        playbook=playbook(),
        labels=settings.AlertsSettings(),
    )
    names = [m.name for m in found]
    assert ("workload", "web", False, True) in as_tuples(found)
    assert "pod" not in names


def test_carries_the_playbooks_matchers_so_unhandled_alerts_stay_audible() -> None:
    found = silencing.matchers_for(
        event=event(),
        target=WEB,
        playbook=playbook('severity="critical"', 'team!="payments"', 'env=~"prod|staging"', 'tier!~"db.*"'),
        labels=settings.AlertsSettings(),
    )
    assert as_tuples(found)[-4:] == [
        ("severity", "critical", False, True),
        ("team", "payments", False, False),
        ("env", "prod|staging", True, True),
        ("tier", "db.*", True, False),
    ]


def test_lasts_the_actions_cooldown_and_at_least_the_minimum() -> None:
    config = settings.Settings.model_validate({**AM, "guardrails": {"cooldown_seconds": {"evict_pod": 60}}})
    assert (
        silencing.duration_seconds(
            settings.Action.RAISE_MEMORY, guardrails=config.guardrails, alertmanager=config.alertmanager
        )
        == 300
    )
    default = settings.Settings.model_validate(AM)
    assert (
        silencing.duration_seconds(
            settings.Action.RAISE_MEMORY, guardrails=default.guardrails, alertmanager=default.alertmanager
        )
        == 1800
    )


def test_proposes_a_silence_after_a_mitigation_with_a_pointer_to_the_ledger() -> None:
    silence, why = silencing.propose(
        event=event(),
        target=WEB,
        playbook=playbook(),
        action=settings.Action.RAISE_MEMORY,
        outcome=decisions.Outcome.DONE,
        config=settings.Settings.model_validate(AM),
        now=NOW,
    )
    assert silence is not None and why == ""
    assert silence.created_by == "oom-responder"
    assert silence.starts_at == NOW and silence.ends_at == NOW + datetime.timedelta(seconds=1800)
    assert "raise_memory on Deployment shop/web" in silence.comment
    assert "occurrence f00d@" in silence.comment
    assert "oom-responder\\.io/ledger" in silence.comment


@pytest.mark.parametrize(
    ("config", "action", "outcome", "status", "reason"),
    [
        pytest.param({}, "raise_memory", "done", "firing", "no Alertmanager API", id="no-url"),
        pytest.param(
            {"alertmanager": {"url": "http://am:9093", "silences": False}},
            "raise_memory",
            "done",
            "firing",
            "no Alertmanager API",
            id="switched-off",
        ),
        pytest.param(AM, "escalate", "escalated", "firing", "humans must keep hearing", id="escalation"),
        pytest.param(AM, "capture_diagnostics", "done", "firing", "does not mitigate", id="diagnostics"),
        pytest.param(AM, "raise_memory", "would_do", "firing", "would_do", id="dry-run"),
        pytest.param(AM, "scale_out", "blocked", "firing", "blocked", id="blocked"),
        pytest.param(AM, "evict_pod", "failed", "firing", "failed", id="refused"),
        pytest.param(AM, "rollout_restart", "done", "resolved", "not firing", id="resolved"),
    ],
)
def test_never_silences_what_it_did_not_mitigate(
    config: dict[str, object], action: str, outcome: str, status: str, reason: str
) -> None:
    silence, why = silencing.propose(
        event=dataclasses.replace(event(), status=alerts.AlertStatus(status)),
        target=WEB,
        playbook=playbook(),
        action=settings.Action(action),
        outcome=decisions.Outcome(outcome),
        config=settings.Settings.model_validate(config),
        now=NOW,
    )
    assert silence is None
    assert reason in why


def test_refuses_a_url_that_is_not_http() -> None:
    with pytest.raises(ValueError, match="http"):
        settings.AlertmanagerSettings(url="alertmanager:9093")
    assert settings.AlertmanagerSettings(url="http://am:9093/").url == "http://am:9093"
