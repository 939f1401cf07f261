"""The Grafana dashboard for the service's own metrics.

Aspects covered:
* every query is valid PromQL (Grafana's variables substituted, then checked by promtool as recording rules);
* every metric a query names is one the service exports (with prometheus_client's `_total`, `_bucket`,
  `_info` suffixes), and every exported metric appears on the dashboard;
* panel ids are unique and panels do not overlap.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

from responder import metrics
from tests.deploy import tooling

DASHBOARD = tooling.REPO / "dashboards" / "oom-responder.json"
_VARIABLES = {"$__rate_interval": "1m", "$__range": "1h", "$job": ".*", "$namespace": ".*"}


def _panels() -> list[dict[str, Any]]:
    panels: list[dict[str, Any]] = json.loads(DASHBOARD.read_text())["panels"]
    return panels


def _queries() -> list[str]:
    return [target["expr"] for panel in _panels() for target in panel.get("targets", [])]


# Series names per metric type, as prometheus_client exposes them (labelled metrics have no samples until
# first used, so the names are derived from the families).
_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "info": ("_info",),
    "gauge": ("",),
}


def _exported() -> dict[str, tuple[str, ...]]:
    """Family name → the series names it exposes."""
    registry = CollectorRegistry()
    metrics.Metrics(registry)
    return {
        family.name: tuple(family.name + s for s in _SUFFIXES[family.type]) for family in registry.collect()
    }


def test_every_query_is_valid_promql(promtool: Path, tmp_path: Path) -> None:
    rules = []
    for index, raw in enumerate(_queries()):
        query = raw
        for variable, value in _VARIABLES.items():
            query = query.replace(variable, value)
        assert "$" not in query, f"unsubstituted variable in {query}"
        rules.append({"record": f"dashboard:query_{index}", "expr": query})
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = tooling.run([promtool, "check", "rules", path])
    assert result.returncode == 0, result.stdout + result.stderr


def test_queries_name_only_exported_metrics_and_cover_them_all() -> None:
    exported = _exported()
    used = {name for query in _queries() for name in re.findall(r"\boom_responder_[a-z_]+", query)}
    assert used - {name for names in exported.values() for name in names} == set(), "not exported"
    unused = [family for family, names in exported.items() if not set(names) & used]
    assert unused == [], "metrics missing from the dashboard"


def test_panels_have_unique_ids_and_do_not_overlap() -> None:
    panels = _panels()
    assert len({p["id"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        box = panel["gridPos"]
        assert box["x"] + box["w"] <= 24
        mine = {
            (x, y) for x in range(box["x"], box["x"] + box["w"]) for y in range(box["y"], box["y"] + box["h"])
        }
        assert not cells & mine, f"panel {panel['title']!r} overlaps another"
        cells |= mine
