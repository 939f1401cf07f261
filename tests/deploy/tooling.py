"""Test support for the deployment tests: finding helm and the other tools, rendering the chart.

Deployment stage only: nothing here imports the service; it runs the same command-line tools an operator runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "CHART",
    "KUBE_VERSION",
    "REPO",
    "find_helm",
    "find_tool",
    "render",
    "render_documents",
    "run",
]

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "oom-responder"
# helm built from source reports Kubernetes v1.20 unless told otherwise; the chart needs >= 1.27.
KUBE_VERSION = "1.36.0"


def find_tool(name: str) -> Path | None:
    """`name` from $KUBEBUILDER_ASSETS, the asset cache `scripts/test-assets` builds, or PATH."""
    dirs: list[Path] = []
    if env := os.environ.get("KUBEBUILDER_ASSETS"):
        dirs.append(Path(env))
    try:
        printed = subprocess.run(
            [str(REPO / "scripts" / "test-assets"), "--print-dir"],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        printed = ""
    if printed:
        dirs.append(Path(printed.splitlines()[-1]))
    for directory in dirs:
        candidate = directory / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    on_path = shutil.which(name)
    return Path(on_path) if on_path else None


def find_helm() -> Path | None:
    return find_tool("helm")


def run(
    argv: Sequence[str | Path], *, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run a tool; the caller asserts on returncode and shows stdout/stderr on failure."""
    return subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, check=False, cwd=cwd or REPO, timeout=timeout
    )


def _helm_args(values: Mapping[str, Any] | None, values_dir: Path | None) -> list[str]:
    if values is None:
        return []
    assert values_dir is not None, "values need a directory to be written to"
    path = values_dir / "values.yaml"
    path.write_text(yaml.safe_dump(dict(values)))
    return ["--values", str(path)]


def render(
    helm: Path,
    *,
    values: Mapping[str, Any] | None = None,
    values_dir: Path | None = None,
    release: str = "responder",
    namespace: str = "oom-responder",
    extra: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """`helm template` the chart; the result's stdout is the manifest stream."""
    return run(
        [
            helm,
            "template",
            release,
            CHART,
            "--namespace",
            namespace,
            "--kube-version",
            KUBE_VERSION,
            *_helm_args(values, values_dir),
            *extra,
        ]
    )


def render_documents(
    helm: Path,
    *,
    values: Mapping[str, Any] | None = None,
    values_dir: Path | None = None,
    release: str = "responder",
    namespace: str = "oom-responder",
) -> list[dict[str, Any]]:
    """The rendered objects, parsed; fails the test with helm's message if rendering fails."""
    result = render(helm, values=values, values_dir=values_dir, release=release, namespace=namespace)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]
