"""`oom-responder plan`: what would happen to each alert of a payload, from labels only.

Covers: a planned action with its target and fallbacks; the reasons for doing nothing (unmapped name, no
playbook, resolved, duplicate within the payload, missing labels); actions that cannot fit the workload kind are
skipped; JSON and text output from the installed command; a bad payload exits 2 naming the field; a kubeconfig
that is configured but broken is named (exit 1), never passed off as "no cluster is configured".
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from responder.commands import planning
from responder.models import alerts, settings
from tests.unit import payloads

EXAMPLE = Path(__file__).resolve().parents[3] / "config" / "responder.yaml"


def _plan(*alert_bodies: dict[str, Any]) -> list[planning.LabelPlan]:
    payload = alerts.WebhookPayload.model_validate(payloads.payload(*alert_bodies))
    return planning.plan_payload(payload, config=settings.Settings())


def test_plans_the_first_action_with_its_fallbacks() -> None:
    [plan] = _plan(payloads.alert("PodMemoryHigh", workload="api", workload_kind="Deployment"))
    assert plan.playbook == "memory-high-scale-out"
    assert plan.target == "shop/Deployment/api"
    assert (plan.action, plan.fallbacks, plan.reason) == ("scale_out", ("evict_pod",), None)
    assert plan.queue_key == "shop/api"


def test_an_action_that_cannot_fit_the_workload_kind_is_skipped() -> None:
    [plan] = _plan(payloads.alert("PodMemoryHigh", workload="agent", workload_kind="DaemonSet"))
    assert (plan.action, plan.fallbacks) == ("evict_pod", ())


def test_additional_actions_are_listed() -> None:
    [plan] = _plan(payloads.alert("PodRestartingFrequently"))
    assert plan.action == "scale_out"
    assert plan.additional == ("capture_diagnostics", "escalate")
    assert plan.target == "shop/Pod/api-7d9c-x1"


def test_shows_the_restart_schedule_and_the_verdicts_a_playbook_would_create() -> None:
    config = settings.Settings.model_validate(
        {
            "playbooks": [
                {
                    "name": "oom-raise-and-restart",
                    "alerts": ["oom_killed"],
                    "actions": [
                        "raise_memory",
                        {"scheduled_restart": {"interval_seconds": 21600, "max_count": 10}},
                    ],
                }
            ]
        }
    )
    payload = alerts.WebhookPayload.model_validate(payloads.payload(payloads.alert("OOMKilled")))
    [plan] = planning.plan_payload(payload, config=config)
    assert plan.additional == ("scheduled_restart",)
    assert plan.schedules == (
        "rolling restart every 6h, for 7d or 10 restarts; stops when the image changes, after 2 stable "
        "verdicts, on opt-out or `oom-responder schedules cancel`",
    )
    assert plan.verdicts is not None and plan.verdicts.startswith("at 1h, 6h, 24h, 48h after the mitigation")
    text = planning.render_text([plan])
    assert "    schedule: rolling restart every 6h" in text and "    verdicts: at 1h, 6h, 24h, 48h" in text


def test_explains_why_nothing_would_be_done() -> None:
    plans = _plan(
        payloads.alert("CPUThrottlingHigh", fingerprint="f1"),
        payloads.alert("OOMKilled", fingerprint="f2", status="resolved"),
        payloads.alert("OOMKilled", fingerprint="f3"),
        payloads.alert("OOMKilled", fingerprint="f3"),
        payloads.alert("OOMKilled", fingerprint="f4", namespace=None),
    )
    assert [p.reason for p in plans] == ["no_playbook", "resolved", None, "duplicate", "missing_labels"]
    assert "not mapped" in plans[0].note


def test_no_playbook_when_matchers_exclude_the_alert() -> None:
    config = settings.Settings.model_validate(
        {
            "playbooks": [
                {
                    "name": "prod",
                    "alerts": ["oom_killed"],
                    "matchers": ['namespace="prod"'],
                    "actions": ["evict_pod"],
                }
            ]
        }
    )
    payload = alerts.WebhookPayload.model_validate(payloads.payload(payloads.alert()))
    [plan] = planning.plan_payload(payload, config=config)
    assert plan.reason == "no_playbook"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["oom-responder", "plan", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_the_command_prints_json(tmp_path: Path) -> None:
    path = tmp_path / "payload.json"
    path.write_text(json.dumps(payloads.payload(payloads.alert("OOMKilled"), payloads.alert("Nope"))))
    result = _run("--config", str(EXAMPLE), str(path), "--output", "json")
    assert result.returncode == 0, result.stderr
    [first, second] = json.loads(result.stdout)
    assert first["playbook"] == "oom-raise-memory"
    assert first["action"] == "raise_memory"
    assert first["occurrence_id"] == "a1b2c3d4e5f60718@2024-05-01T10:00:00+00:00"
    assert second["reason"] == "no_playbook"


def test_the_command_prints_text(tmp_path: Path) -> None:
    path = tmp_path / "payload.json"
    path.write_text(json.dumps(payloads.payload(payloads.alert("OOMKilled", status="resolved"))))
    result = _run("--config", str(EXAMPLE), str(path))
    assert result.returncode == 0, result.stderr
    assert "[0] OOMKilled (resolved)" in result.stdout
    assert "nothing to do: resolved" in result.stdout


def test_a_bad_payload_exits_2_naming_the_field(tmp_path: Path) -> None:
    path = tmp_path / "payload.json"
    body = payloads.payload(payloads.alert())
    del body["alerts"][0]["startsAt"]
    path.write_text(json.dumps(body))
    result = _run(str(path))
    assert result.returncode == 2
    assert f"{path}: alerts[0].startsAt: Field required" in result.stderr


def test_a_broken_kubeconfig_is_named_not_passed_off_as_no_cluster(tmp_path: Path) -> None:
    path = tmp_path / "payload.json"
    path.write_text(json.dumps(payloads.payload(payloads.alert("OOMKilled"))))
    broken = tmp_path / "kubeconfig"
    broken.write_text("current-context: x\ncontexts: 5\n")
    env = {k: v for k, v in os.environ.items() if k != "KUBERNETES_SERVICE_HOST"}
    result = subprocess.run(
        ["oom-responder", "plan", "--config", str(EXAMPLE), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**env, "KUBECONFIG": str(broken)},
    )
    assert result.returncode == 1
    assert "kubernetes credentials are configured but unusable" in result.stderr
    assert "contexts must be a list" in result.stderr
    assert "no cluster is configured" not in result.stdout
