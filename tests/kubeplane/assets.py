"""Finding the control-plane binaries (test support; starts nothing, builds only on request).

Binaries are looked up the envtest way: a flat folder named by ``KUBEBUILDER_ASSETS`` first (so
a developer with ``setup-envtest`` can run the suite), then the cache that ``scripts/test-assets``
fills from Go modules, then ``PATH``. Building is delegated to that script so that CI, the README
and this plugin share one recipe.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from pathlib import Path

__all__ = [
    "OPTIONAL",
    "REQUIRED",
    "Assets",
    "AssetsMissing",
    "build_assets",
    "find_assets",
    "repo_root",
]

#: Binaries without which no integration test can run (helm is optional: only its own tests use it).
REQUIRED = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kwok",
)

#: Binaries only some tests use (helm: the chart's; kube-state-metrics: the end-to-end alert path's).
OPTIONAL = ("helm", "kube-state-metrics")


class AssetsMissing(RuntimeError):
    """Raised when a required binary is nowhere to be found (the message names which and where)."""


@dataclasses.dataclass(frozen=True)
class Assets:
    """Absolute paths of the binaries, by name."""

    paths: dict[str, Path]

    def __getitem__(self, name: str) -> Path:
        return self.paths[name]

    def get(self, name: str) -> Path | None:
        """The binary's path, or None if it was not found (for the OPTIONAL tools)."""
        return self.paths.get(name)


def repo_root() -> Path:
    """The repository root (this file lives in ``tests/kubeplane/``)."""
    return Path(__file__).resolve().parents[2]


def _script() -> Path:
    return repo_root() / "scripts" / "test-assets"


def _cache_dir() -> Path | None:
    """The folder ``scripts/test-assets --print-dir`` names, whether complete or not."""
    try:
        proc = subprocess.run(
            [str(_script()), "--print-dir"],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = proc.stdout.strip().splitlines()
    return Path(lines[-1]) if lines else None


def _search_dirs() -> list[Path]:
    dirs: list[Path] = []
    if env := os.environ.get("KUBEBUILDER_ASSETS"):
        dirs.append(Path(env))
    cache = _cache_dir()
    if cache is not None:
        dirs.append(cache)
    return dirs


def find_assets() -> Assets:
    """Locate every binary; raise AssetsMissing naming the absent required ones."""
    dirs = _search_dirs()
    found: dict[str, Path] = {}
    for name in (*REQUIRED, *OPTIONAL):
        for d in dirs:
            candidate = d / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                found[name] = candidate.resolve()
                break
        else:
            on_path = shutil.which(name)
            if on_path:
                found[name] = Path(on_path).resolve()
    missing = [n for n in REQUIRED if n not in found]
    if missing:
        where = ", ".join(str(d) for d in dirs) or "(no asset dir)"
        raise AssetsMissing(
            f"missing {', '.join(missing)} in {where} and PATH; run scripts/test-assets to build them"
        )
    return Assets(paths=found)


def build_assets(*, log_path: Path, timeout_seconds: float = 3600) -> Path:
    """Run ``scripts/test-assets`` (slow the first time: it compiles Kubernetes) and return its dir.

    Output goes to ``log_path`` because pytest would otherwise swallow 20 minutes of progress;
    the error raised on failure quotes the log's tail so the skip reason names the real cause.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log:
        try:
            proc = subprocess.run(
                [str(_script())],
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                check=False,
                timeout=timeout_seconds,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise AssetsMissing(f"scripts/test-assets failed: {e}") from e
    if proc.returncode != 0:
        # Go's "downloading"/"added" chatter says nothing about the failure; skip it.
        lines = log_path.read_text(errors="replace").strip().splitlines()
        tail = [line for line in lines if not line.startswith(("go: downloading", "go: added"))][-3:]
        raise AssetsMissing(
            f"scripts/test-assets exited {proc.returncode} (log: {log_path}): " + " | ".join(tail)
        )
    return Path(proc.stdout.strip().splitlines()[-1])
