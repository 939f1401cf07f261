"""Loading the configuration file and reading secrets.

Covers: the example config loads and documents every settings key; an empty file means defaults; every problem
is reported with its key path; YAML syntax errors and missing files; secrets from files (winning) and env.
"""

from __future__ import annotations

import re
from pathlib import Path

import pydantic
import pytest

from responder import config
from responder.models import settings

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "responder.yaml"


def _field_names(model: type[pydantic.BaseModel]) -> set[str]:
    names: set[str] = set()
    for name, field in model.model_fields.items():
        names.add(name)
        for arg in _model_types(field.annotation):
            names |= _field_names(arg)
    return names


def _model_types(annotation: object) -> list[type[pydantic.BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return [annotation]
    found: list[type[pydantic.BaseModel]] = []
    for arg in getattr(annotation, "__args__", ()):
        found.extend(_model_types(arg))
    return found


def test_the_example_config_loads() -> None:
    loaded = config.load_settings(EXAMPLE)
    assert loaded.mode is settings.Mode.DRY_RUN
    assert [p.name for p in loaded.playbooks] == [
        "oom-spike",
        "oom-leak",
        "oom-accelerating",
        "memory-high-spike",
        "oom-raise-memory",
        "memory-high-scale-out",
        "restarting-scale-out",
    ]
    assert loaded.auth.mode == "bearer"


def test_the_example_config_mentions_every_settings_key() -> None:
    text = EXAMPLE.read_text()
    mentioned = set(re.findall(r"^[\s#-]*([a-z_]+):", text, flags=re.MULTILINE))
    missing = sorted(_field_names(settings.Settings) - mentioned)
    assert missing == []


def test_an_empty_file_means_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing\n")
    assert config.load_settings(path) == settings.Settings()


def test_no_file_means_the_defaults() -> None:
    assert config.load_settings(None) == settings.Settings()


def test_reports_every_problem_with_its_key_path(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "server: {port: 99999, bogus: 1}\n"
        "playbooks:\n"
        "- name: ok\n  alerts: [oom_killed]\n  actions: [evict_pod]\n"
        "- name: two\n  alerts: [oom_killed]\n  actions:\n  - raise_memory: {ratio: 0.9}\n"
    )
    with pytest.raises(config.ConfigError) as caught:
        config.load_settings(path)
    problems = caught.value.problems
    assert "playbooks[1].actions[0].raise_memory.ratio: must be > 1" in problems
    assert any(p.startswith("server.port: ") for p in problems)
    assert "server.bogus: Extra inputs are not permitted" in problems
    assert len(problems) == 3


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        pytest.param(
            "playbooks:\n- name: x\n  alerts: [oom]\n  actions: [evict_pod]\n",
            "playbooks[0].alerts[0]: ",
            id="unknown-kind",
        ),
        pytest.param(
            'playbooks:\n- name: x\n  alerts: [oom_killed]\n  matchers: ["pod ~ x"]\n  actions: [evict_pod]\n',
            "playbooks[0].matchers[0]: not a label matcher",
            id="bad-matcher",
        ),
        pytest.param(
            "playbooks:\n- name: x\n  alerts: [oom_killed]\n  actions: [{evict_pod: {}, escalate: {}}]\n",
            "playbooks[0].actions[0]: exactly one action per entry",
            id="two-actions",
        ),
        pytest.param(
            "queue: {workers: 0}\n", "queue.workers: Input should be greater than 0", id="zero-workers"
        ),
        pytest.param("mode: yolo\n", "mode: Input should be 'dry-run' or 'enforce'", id="mode"),
    ],
)
def test_names_the_key_of_each_kind_of_problem(tmp_path: Path, yaml_text: str, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(config.ConfigError) as caught:
        config.load_settings(path)
    assert any(p.startswith(expected) for p in caught.value.problems), caught.value.problems


def test_yaml_syntax_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("server:\n  port: [8080\n")
    with pytest.raises(config.ConfigError) as caught:
        config.load_settings(path)
    [problem] = caught.value.problems
    assert problem.startswith(f"{path}: not valid YAML (line ")


def test_a_top_level_list_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(config.ConfigError) as caught:
        config.load_settings(path)
    assert "top level must be a mapping" in caught.value.problems[0]


def test_a_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError) as caught:
        config.load_settings(tmp_path / "nope.yaml")
    assert caught.value.problems == [f"{tmp_path / 'nope.yaml'}: no such file"]


def test_a_secret_file_wins_over_the_environment_and_loses_its_newline(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("from-file\n")
    assert config.read_secret(file=str(path), env="TOKEN", environ={"TOKEN": "from-env"}) == "from-file"


def test_a_secret_comes_from_the_environment_when_no_file_is_set() -> None:
    assert config.read_secret(file=None, env="TOKEN", environ={"TOKEN": "from-env"}) == "from-env"
    assert config.read_secret(file=None, env="TOKEN", environ={}) is None
    assert config.read_secret(file=None, env=None, environ={"TOKEN": "x"}) is None


def test_an_unreadable_or_empty_secret_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(config.SecretError, match="cannot read secret file"):
        config.read_secret(file=str(tmp_path / "missing"), env=None, environ={})
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(config.SecretError, match="is empty"):
        config.read_secret(file=str(empty), env=None, environ={})
