"""The alert rules and the Alertmanager example, checked with Prometheus's and Alertmanager's own tools.

Aspects covered:
* `promtool check rules` accepts config/alert-rules.yaml and `promtool test rules` passes its unit tests;
* the chart ships the very same rules (files/alert-rules.yaml is a byte-for-byte copy);
* every alert carries what the service reads: the labels namespace, pod, container, severity, and the
  annotations summary, description, runbook_url; every alert name is one the service maps by default;
* PodMemoryHigh has a warning at 80 % and a critical at 90 %;
* `amtool check-config` accepts config/alertmanager-example.yaml, and its receiver posts to the chart's
  Service with a bearer credentials file, send_resolved and max_alerts;
* the example routes in config/alertmanager-example.yaml and the chart's NOTES send every shipped alert.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from responder.models import settings
from tests.deploy import tooling

RULES = tooling.REPO / "config" / "alert-rules.yaml"
RULES_TESTS = tooling.REPO / "config" / "rules-tests.yaml"
ALERTMANAGER = tooling.REPO / "config" / "alertmanager-example.yaml"


def _alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_promtool_accepts_the_rules(promtool: Path) -> None:
    result = tooling.run([promtool, "check", "rules", RULES])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 5 rules found" in result.stdout


def test_promtool_unit_tests_of_the_rules_pass(promtool: Path) -> None:
    result = tooling.run([promtool, "test", "rules", RULES_TESTS.name], cwd=RULES_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_chart_ships_the_same_rules_file() -> None:
    assert (tooling.CHART / "files" / "alert-rules.yaml").read_bytes() == RULES.read_bytes()


def test_every_alert_carries_the_labels_and_annotations_the_service_reads() -> None:
    defaults = settings.AlertsSettings()
    for rule in _alert_rules():
        by_clause = rule["expr"].split("by (", 1)[1].split(")", 1)[0]
        grouped = {label.strip() for label in by_clause.split(",")}
        assert {defaults.namespace_label, defaults.pod_label, defaults.container_label} <= grouped, rule[
            "alert"
        ]
        assert rule["labels"][defaults.severity_label] in {"warning", "critical"}
        assert {"summary", "description", "runbook_url"} <= set(rule["annotations"]), rule["alert"]
        assert rule["alert"] in defaults.names, f"{rule['alert']} is not mapped by the service's defaults"


def test_pod_memory_high_warns_at_80_percent_and_is_critical_at_90() -> None:
    memory_high = {r["labels"]["severity"]: r for r in _alert_rules() if r["alert"] == "PodMemoryHigh"}
    assert set(memory_high) == {"warning", "critical"}
    assert memory_high["warning"]["expr"].rstrip().endswith("> 0.8")
    assert memory_high["warning"]["for"] == "5m"
    assert memory_high["critical"]["expr"].rstrip().endswith("> 0.9")


def test_amtool_accepts_the_alertmanager_example(amtool: Path) -> None:
    result = tooling.run([amtool, "check-config", ALERTMANAGER])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_alertmanager_example_posts_to_the_chart_service_with_a_token_file() -> None:
    config = yaml.safe_load(ALERTMANAGER.read_text())
    receiver = next(r for r in config["receivers"] if r["name"] == "oom-responder")
    (webhook,) = receiver["webhook_configs"]
    # The chart's Service for release "oom-responder" in namespace "oom-responder", port 8080.
    assert webhook["url"] == "http://oom-responder.oom-responder.svc:8080/webhook"
    assert webhook["send_resolved"] is True
    assert webhook["max_alerts"] > 0
    assert webhook["http_config"]["authorization"]["credentials_file"].startswith(
        "/etc/alertmanager/secrets/"
    )
    route = next(r for r in config["route"]["routes"] if r["receiver"] == "oom-responder")
    assert route["continue"] is True
    (matcher,) = route["matchers"]
    routed = set(matcher.removeprefix('alertname=~"').removesuffix('"').split("|"))
    assert routed == {rule["alert"] for rule in _alert_rules()}


def test_the_route_in_the_chart_notes_sends_every_shipped_alert() -> None:
    notes = (tooling.CHART / "templates" / "NOTES.txt").read_text()
    (regex,) = re.findall(r'alertname=~"([^"]+)"', notes)
    assert set(regex.split("|")) == {rule["alert"] for rule in _alert_rules()}
