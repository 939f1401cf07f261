"""The test-only copy of the alert rules differs from config/alert-rules.yaml in durations only.

Covers: every `for:`, every range window and the trend rule's `predict_linear` horizon are divided by
TIME_SCALE, windows staying at least MIN_WINDOW_SECONDS long; with the durations put back, each expression is
the shipped one character for character; the labels, annotations and alert names are unchanged; promtool
accepts the copy.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e import stack

pytestmark = pytest.mark.e2e

SHIPPED = yaml.safe_load(stack.RULES.read_text())["groups"]
COPY = yaml.safe_load(stack.shorten_rules(stack.RULES.read_text()))["groups"]


def _rules(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [rule for group in groups for rule in group["rules"]]


def test_only_durations_change() -> None:
    pairs = list(zip(_rules(SHIPPED), _rules(COPY), strict=True))
    assert pairs
    for shipped, copy in pairs:
        assert {k: v for k, v in shipped.items() if k not in {"for", "expr"}} == {
            k: v for k, v in copy.items() if k not in {"for", "expr"}
        }
        # Blank the numbers of durations and the horizon: what is left must be identical.
        blank = re.compile(r"\[\d+[smhd]\]|(?<=, )[0-9 *]+(?=\))")
        assert blank.sub("#", str(shipped["expr"])) == blank.sub("#", str(copy["expr"]))


@pytest.mark.parametrize(
    ("alert", "shipped_for", "copy_for"),
    [
        pytest.param("PodMemoryHigh", "5m", "5s", id="memory-high-warning"),
        pytest.param("PodMemoryTrendingToOOM", "1h", "60s", id="trend"),
    ],
)
def test_holds_are_divided_by_the_time_scale(alert: str, shipped_for: str, copy_for: str) -> None:
    assert stack.TIME_SCALE == 60
    shipped = next(r for r in _rules(SHIPPED) if r.get("alert") == alert)
    copy = next(r for r in _rules(COPY) if r.get("alert") == alert)
    assert (shipped["for"], copy["for"]) == (shipped_for, copy_for)


def test_windows_and_the_trend_horizon_are_divided_by_the_time_scale() -> None:
    trend = next(r for r in _rules(COPY) if r.get("alert") == "PodMemoryTrendingToOOM")
    assert "[360s], 240)" in str(trend["expr"])
    assert "[30s]" in str(trend["expr"])
    restarts = next(r for r in _rules(COPY) if r.get("alert") == "PodRestartingFrequently")
    assert "[60s]" in str(restarts["expr"])


def test_windows_span_several_scrapes_even_where_the_division_would_not() -> None:
    # OOMKilled's 10 minutes divided by 60 would be 10 s: a few late scrapes could miss a restart in it.
    oom = next(r for r in _rules(COPY) if r.get("alert") == "OOMKilled")
    assert f"[{stack.MIN_WINDOW_SECONDS}s]" in str(oom["expr"])
    assert stack.MIN_WINDOW_SECONDS >= 10 * stack.SCRAPE_SECONDS


def test_promtool_accepts_the_copy(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not found (Debian package prometheus)")
    path = tmp_path / "rules.yaml"
    path.write_text(stack.shorten_rules(stack.RULES.read_text()))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 5 rules found" in result.stdout
