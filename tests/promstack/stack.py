"""A real Prometheus on loopback over a TSDB backfilled with hours or days of history (test support).

`promtool tsdb create-blocks-from openmetrics` turns an OpenMetrics file into TSDB blocks; Prometheus started
on that storage serves them over its HTTP API like any other data. No scrape targets: the history is all
there is. See `tests/promstack/__init__.py` for how tests use it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

__all__ = ["PROMETHEUS", "PROMTOOL", "PromStack", "Series", "backfill", "missing_binaries", "running"]

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def missing_binaries() -> str | None:
    """Why the stack cannot start here (None when it can): tests skip with this reason."""
    for path in (PROMETHEUS, PROMTOOL):
        if not Path(path).exists():
            return (
                f"{path} is not installed (Debian packages prometheus / promtool; scripts/test installs them)"
            )
    return None


@dataclasses.dataclass(frozen=True)
class Series:
    """One time series to backfill: a metric name, its labels, and (Unix seconds, value) samples in time order.

    NaN values are written as NaN (Prometheus stores them); leave a sample out to make a scrape gap.
    """

    name: str
    labels: Mapping[str, str]
    samples: Sequence[tuple[float, float]]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def write_openmetrics(series: Iterable[Series], path: Path) -> Path:
    """The series as an OpenMetrics text file, one family per metric name (declared gauge), `# EOF` at the end."""
    by_name: dict[str, list[Series]] = {}
    for s in series:
        by_name.setdefault(s.name, []).append(s)
    with path.open("w") as f:
        for name, members in by_name.items():
            f.write(f"# TYPE {name} gauge\n")
            for s in members:
                labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(s.labels.items()))
                for ts, value in s.samples:
                    f.write(f"{name}{{{labels}}} {_number(value)} {ts:.3f}\n")
        f.write("# EOF\n")
    return path


def backfill(series: Iterable[Series], storage: Path) -> None:
    """Write the series into TSDB blocks under `storage` (created if missing)."""
    storage.mkdir(parents=True, exist_ok=True)
    source = write_openmetrics(series, storage.parent / f"{storage.name}.om")
    result = subprocess.run(
        [PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", str(source), str(storage)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"promtool backfill failed ({result.returncode}): {result.stderr[-2000:]}")
    source.unlink()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclasses.dataclass
class PromStack:
    """A running Prometheus: `url` is its base URL (http://127.0.0.1:PORT)."""

    url: str
    process: subprocess.Popen[bytes]
    storage: Path
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start(storage: Path, *, retention: str = "30d", ready_timeout: float = 60.0) -> PromStack:
    """Start Prometheus on a free loopback port over `storage` (already backfilled); wait for /-/ready."""
    config = storage.parent / f"{storage.name}.prometheus.yml"
    # No scrape configs: the backfilled history is all there is, and nothing changes under the tests.
    config.write_text("global:\n  scrape_interval: 1m\n")
    port = _free_port()
    log = storage.parent / f"{storage.name}.prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={storage}",
                f"--storage.tsdb.retention.time={retention}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--web.enable-admin-api",
                "--log.level=warn",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    stack = PromStack(url=f"http://127.0.0.1:{port}", process=process, storage=storage, log=log)
    deadline = time.monotonic() + ready_timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"prometheus exited ({process.returncode}): {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{stack.url}/-/ready", timeout=2) as response:
                if response.status == 200:
                    return stack
        except OSError:
            pass
        if time.monotonic() > deadline:
            stack.stop()
            raise RuntimeError(f"prometheus not ready after {ready_timeout}s: {log.read_text()[-2000:]}")
        time.sleep(0.2)


@contextlib.contextmanager
def running(series: Iterable[Series], directory: Path) -> Iterator[PromStack]:
    """Backfill `series` into a fresh TSDB under `directory`, start Prometheus over it, stop it afterwards."""
    storage = directory / "tsdb"
    backfill(series, storage)
    stack = start(storage)
    try:
        yield stack
    finally:
        stack.stop()
