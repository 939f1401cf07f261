"""The chart's values.schema.json and the settings model agree.

Aspects covered: the committed schema's `config` block is exactly what `scripts/chart-schema` generates from the
settings model (the failure message names the command to run); the documented example config and the chart's
default values pass it; for a set of good and bad config blocks the schema and the model accept and refuse the
same ones (a typo, a wrong type, an unknown mode, a bad quantity, a bad matcher, a bare action name, a
quantity string where bytes are held).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pydantic
import pytest
import yaml

from responder.models import settings

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "oom-responder"


def _generator() -> ModuleType:
    path = REPO / "scripts" / "chart-schema"
    loader = importlib.machinery.SourceFileLoader("chart_schema", str(path))
    spec = importlib.util.spec_from_loader("chart_schema", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def _schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
    return loaded


def _values(config: Any) -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    values["config"] = config
    return values


def _schema_errors(config: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(_schema())
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(_values(config))]


def test_the_committed_schema_is_generated_from_the_settings_model() -> None:
    generator = _generator()
    committed = (CHART / "values.schema.json").read_text()
    assert committed == generator.render(json.loads(committed)), (
        f"charts/oom-responder/values.schema.json is stale: run `{generator.COMMAND}` and commit the result"
    )


def test_the_example_config_and_the_chart_defaults_pass_the_schema() -> None:
    example = yaml.safe_load((REPO / "config" / "responder.yaml").read_text())
    assert _schema_errors(example) == []
    defaults: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    assert _schema_errors(defaults["config"]) == []


SAMPLES = [
    pytest.param({"mode": "enforce"}, id="mode"),
    pytest.param({"mode": "yolo"}, id="unknown-mode"),
    pytest.param({"sever": {"port": 8080}}, id="typo-top-level"),
    pytest.param({"server": {"prot": 8080}}, id="typo-nested"),
    pytest.param({"server": {"port": "eighty"}}, id="wrong-type"),
    pytest.param({"guardrails": {"max_memory": "16Gi"}}, id="quantity"),
    pytest.param({"guardrails": {"max_memory": 17179869184}}, id="bytes"),
    pytest.param({"guardrails": {"max_memory": "lots"}}, id="bad-quantity"),
    pytest.param(
        {"playbooks": [{"name": "p", "alerts": ["oom_killed"], "actions": ["evict_pod"]}]}, id="bare-action"
    ),
    pytest.param(
        {"playbooks": [{"name": "p", "alerts": ["oom_killed"], "actions": ["explode"]}]}, id="unknown-action"
    ),
    pytest.param(
        {
            "playbooks": [
                {
                    "name": "p",
                    "alerts": ["oom_killed"],
                    "matchers": ['namespace!~"kube-.*"'],
                    "actions": [{"raise_memory": {"max": "4Gi"}}],
                }
            ]
        },
        id="matcher-string",
    ),
    pytest.param(
        {
            "playbooks": [
                {"name": "p", "alerts": ["oom_killed"], "matchers": ["no quotes"], "actions": ["evict_pod"]}
            ]
        },
        id="bad-matcher",
    ),
    pytest.param(
        {
            "playbooks": [
                {"name": "p", "alerts": ["oom_killed"], "actions": [{"raise_memory": {"ration": 2}}]}
            ]
        },
        id="typo-in-action-options",
    ),
]


@pytest.mark.parametrize("config", SAMPLES)
def test_schema_and_model_accept_and_refuse_the_same_config(config: dict[str, Any]) -> None:
    try:
        settings.Settings.model_validate(config)
        model_accepts = True
    except pydantic.ValidationError:
        model_accepts = False
    errors = _schema_errors(config)
    assert (not errors) == model_accepts, errors
