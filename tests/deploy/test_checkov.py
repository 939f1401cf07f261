"""checkov on the rendered manifests, for the default and for non-default values.

Aspects covered:
* no checkov check fails on what the chart renders;
* every skipped check is skipped by an annotation on the object it concerns, with a reason (`ID=reason`),
  never globally; and only the expected checks are skipped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy import test_chart, tooling

# The reasons live next to the objects (templates/deployment.yaml), where readers of the chart see them.
# The `helm test` pod (templates/tests/test-webhook.yaml) adds the probe skips (CKV_K8S_8, CKV_K8S_9) and,
# since it accepts no connections, the NetworkPolicy one (CKV2_K8S_6) even with networkPolicy on.
EXPECTED_SKIPS = {
    "default": {"CKV_K8S_8", "CKV_K8S_9", "CKV_K8S_15", "CKV_K8S_38", "CKV_K8S_43", "CKV2_K8S_6"},
    # Pulled by digest: the digest skip is gone.
    "custom": {"CKV_K8S_8", "CKV_K8S_9", "CKV_K8S_15", "CKV_K8S_38", "CKV2_K8S_6"},
}


def _checkov(checkov: Path, manifest: Path) -> dict[str, Any]:
    result = tooling.run(
        [checkov, "--file", manifest, "--framework", "kubernetes", "--output", "json", "--skip-download"],
        timeout=600,
    )
    # Exit code 1 means failed checks; anything else non-zero is checkov itself failing.
    assert result.returncode in (0, 1), result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert isinstance(report, dict), report
    return report


@pytest.mark.parametrize("which", ["default", "custom"])
def test_checkov_finds_no_failed_check(which: str, helm: Path, checkov: Path, tmp_path: Path) -> None:
    values = test_chart.NON_DEFAULT if which == "custom" else None
    rendered = tooling.render(helm, values=values, values_dir=tmp_path)
    assert rendered.returncode == 0, rendered.stderr
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(rendered.stdout)

    report = _checkov(checkov, manifest)

    failed = [(c["check_id"], c["resource"], c["check_name"]) for c in report["results"]["failed_checks"]]
    assert failed == []
    assert report["summary"]["passed"] > 100
    skipped = {c["check_id"] for c in report["results"]["skipped_checks"]}
    assert skipped == EXPECTED_SKIPS[which]
    for document in yaml.safe_load_all(rendered.stdout):
        for key, value in ((document or {}).get("metadata", {}).get("annotations") or {}).items():
            if key.startswith("checkov.io/skip"):
                check, _, reason = value.partition("=")
                assert check in skipped and len(reason) > 20, f"{key}: a skip needs a reason"
