"""Settings: defaults are safe (dry-run), errors name their key path, actions are one-key mappings."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from responder.models import settings


def error_locations(data: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    with pytest.raises(pydantic.ValidationError) as caught:
        settings.Settings.model_validate(data)
    return [(tuple(e["loc"]), e["msg"]) for e in caught.value.errors()]


def test_defaults_never_write() -> None:
    assert settings.Settings().mode is settings.Mode.DRY_RUN


def test_default_playbooks_cover_every_alert_kind() -> None:
    covered = {kind for playbook in settings.Settings().playbooks for kind in playbook.alerts}
    assert covered == set(settings.AlertKind)


def test_names_the_key_path_of_a_bad_ratio() -> None:
    [(loc, msg)] = error_locations(
        {"playbooks": [{"name": "a", "alerts": ["oom_killed"], "actions": [{"raise_memory": {"ratio": 1}}]}]}
    )
    assert loc == ("playbooks", 0, "actions", 0, "raise_memory", "ratio")
    assert "must be > 1" in msg


def test_rejects_unknown_keys_so_typos_are_not_ignored() -> None:
    [(loc, _)] = error_locations({"guardrails": {"max_memroy": "1Gi"}})
    assert loc == ("guardrails", "max_memroy")


def test_rejects_two_actions_in_one_entry() -> None:
    [(loc, msg)] = error_locations(
        {
            "playbooks": [
                {"name": "a", "alerts": ["oom_killed"], "actions": [{"evict_pod": {}, "escalate": {}}]}
            ]
        }
    )
    assert loc == ("playbooks", 0, "actions", 0)
    assert "exactly one action" in msg


def test_accepts_a_bare_action_name() -> None:
    playbook = settings.Playbook.model_validate(
        {"name": "a", "alerts": ["memory_high"], "actions": ["evict_pod"]}
    )
    assert playbook.actions[0].action is settings.Action.EVICT_POD


def test_parses_memory_quantities_into_bytes() -> None:
    parsed = settings.GuardrailSettings.model_validate({"max_memory": "2Gi"})
    assert parsed.max_memory == 2 * 2**30


@pytest.mark.parametrize(
    ("text", "name", "op", "value"),
    [
        ('namespace="prod"', "namespace", "=", "prod"),
        ('severity=~"warning|critical"', "severity", "=~", "warning|critical"),
        ('team!="x"', "team", "!=", "x"),
        ('pod!~"canary-.*"', "pod", "!~", "canary-.*"),
        ('msg="say \\"hi\\""', "msg", "=", 'say "hi"'),
    ],
)
def test_parses_alertmanager_matchers(text: str, name: str, op: str, value: str) -> None:
    matcher = settings.Matcher.model_validate(text)
    assert (matcher.name, matcher.op, matcher.value) == (name, op, value)


@pytest.mark.parametrize("text", ["namespace=prod", 'a=="b"', 'x=~"("'])
def test_rejects_malformed_matchers(text: str) -> None:
    with pytest.raises(pydantic.ValidationError):
        settings.Matcher.model_validate(text)


@pytest.mark.parametrize("step", ["0", "+0%", "-1", "two"])
def test_rejects_scale_steps_that_do_not_add_replicas(step: str) -> None:
    with pytest.raises(pydantic.ValidationError):
        settings.ScaleOut(step=step)


def test_rejects_duplicate_playbook_names() -> None:
    playbook = {"name": "same", "alerts": ["oom_killed"], "actions": ["escalate"]}
    [(_, msg)] = error_locations({"playbooks": [playbook, playbook]})
    assert "used twice" in msg
