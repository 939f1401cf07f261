"""The documents agree with each other and with the code.

Aspects covered: the dedup TTL named in the Alertmanager example and in the README is the settings default,
and the example's repeat_interval is at least that long (a repeat must be processed again); the README's
receiver and the Alertmanager example use the same max_alerts and grouping.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from responder.models import settings

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "alertmanager-example.yaml"
README = REPO / "README.md"


def _seconds(duration: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(float(n) * units[u] for n, u in re.findall(r"([0-9.]+)([smhd])", duration))


def _readme_receiver() -> dict[str, Any]:
    text = README.read_text()
    block = text.split("## Alertmanager receiver", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    loaded: dict[str, Any] = yaml.safe_load(block)
    return loaded


def _example_route_and_webhook() -> tuple[dict[str, Any], dict[str, Any]]:
    example = yaml.safe_load(EXAMPLE.read_text())
    route = next(r for r in example["route"]["routes"] if r.get("receiver") == "oom-responder")
    receiver = next(r for r in example["receivers"] if r["name"] == "oom-responder")
    return route, receiver["webhook_configs"][0]


def test_the_dedup_ttl_in_the_docs_is_the_default_and_repeats_come_after_it() -> None:
    ttl = settings.DedupSettings().ttl_seconds
    hours = f"{ttl / 3600:g}"
    assert f"dedup.ttl_seconds ({hours}h by default)" in EXAMPLE.read_text()
    assert f"`dedup.ttl_seconds` ({hours} h)" in README.read_text()
    route, _ = _example_route_and_webhook()
    assert _seconds(route["repeat_interval"]) >= ttl
    readme_route = _readme_receiver()["route"]["routes"][0]
    assert _seconds(readme_route["repeat_interval"]) >= ttl


def test_the_readme_receiver_matches_the_alertmanager_example() -> None:
    route, webhook = _example_route_and_webhook()
    readme = _readme_receiver()
    readme_route = readme["route"]["routes"][0]
    readme_webhook = readme["receivers"][0]["webhook_configs"][0]
    assert readme_webhook["max_alerts"] == webhook["max_alerts"] > 0
    assert readme_route["group_by"] == route["group_by"]
    assert readme_webhook["send_resolved"] == webhook["send_resolved"]
