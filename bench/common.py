"""Shared plumbing of the benchmarks: processes, ports, probes, /proc sampling, load runs and result files.

Every process started here runs in its own session, dies with its parent (PR_SET_PDEATHSIG) and is stopped by
`Proc.stop()` or at interpreter exit, so an interrupted benchmark leaves nothing behind. Loads only ever
target loopback addresses.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from bench import payloads

__all__ = [
    "BENCH_DIR",
    "REPO",
    "RESULTS_DIR",
    "TOKEN",
    "Proc",
    "cpu_seconds",
    "free_port",
    "http_get",
    "machine_info",
    "metric_values",
    "results_dir",
    "rss_bytes",
    "run_loadgen",
    "run_wrk",
    "service_command",
    "start",
    "wait_ready",
    "write_config",
    "write_result",
]

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
TOKEN = "bench-token-0123456789"
"""Bearer token the benchmarks give the servers (through the environment) and send with every webhook."""

_PR_SET_PDEATHSIG = 1
_live: list[Proc] = []


def results_dir(quick: bool) -> Path:
    """Full runs write bench/results/; quick (smoke) runs write bench/results/quick/ and never clobber them."""
    path = RESULTS_DIR / "quick" if quick else RESULTS_DIR
    path.mkdir(parents=True, exist_ok=True)
    return path


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class Proc:
    """A started process whose output goes to a log file."""

    def __init__(self, popen: subprocess.Popen[bytes], *, name: str, log: Path, started_at: float) -> None:
        self.popen = popen
        self.name = name
        self.log = log
        self.started_at = started_at

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit code."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        if self in _live:
            _live.remove(self)
        return self.popen.returncode

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@atexit.register
def _stop_all() -> None:
    for proc in list(_live):
        proc.stop(timeout=5)


def start(
    cmd: Sequence[str], *, name: str, env: Mapping[str, str] | None = None, log_dir: Path | None = None
) -> Proc:
    """Start `cmd` in its own session, output to `<log_dir>/<name>.log` (a temp dir by default)."""
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="oom-bench-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}.log"
    full_env = {**os.environ, **(env or {})}
    full_env.setdefault("PYTHONPATH", str(REPO))
    with log.open("wb") as out:
        started_at = time.perf_counter()
        popen = subprocess.Popen(
            list(cmd),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=REPO,
            start_new_session=True,
            # No threads run while a benchmark starts its processes (the RSS sampler starts after).
            preexec_fn=_die_with_parent,  # noqa: PLW1509
        )
    proc = Proc(popen, name=name, log=log, started_at=started_at)
    _live.append(proc)
    return proc


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def http_get(url: str, *, timeout: float = 2.0) -> tuple[int, bytes]:
    """GET a loopback URL; (status, body), status 0 when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as e:
        return int(e.code), e.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return 0, b""


def wait_ready(proc: Proc, url: str, *, timeout: float = 30.0, interval: float = 0.005) -> float:
    """Poll `url` until it answers 200; seconds since the process was started. Raises if it dies or times out."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        status, _ = http_get(url, timeout=1.0)
        if status == 200:
            return time.perf_counter() - proc.started_at
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.tail()}")
        time.sleep(interval)
    raise RuntimeError(f"{proc.name} not ready at {url} after {timeout} s:\n{proc.tail()}")


def rss_bytes(pid: int) -> int:
    """Resident set size from /proc/<pid>/status (VmRSS), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def metric_values(text: str, name: str) -> dict[str, float]:
    """Samples of one metric family in Prometheus text format: {label string: value}."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            rest = line[len(name) :]
            if rest and rest[0] not in "{ ":
                continue
            labels, _, value = rest.rpartition(" ")
            with contextlib.suppress(ValueError):
                values[labels.strip()] = float(value)
    return values


def service_command(config: Path, *, port: int) -> list[str]:
    """`oom-responder serve` run as a module (works from a checkout without the console script)."""
    return [sys.executable, "-m", "responder.cli", "serve", "--config", str(config), "--port", str(port)]


def write_config(path: Path, overrides: Mapping[str, Any]) -> Path:
    """A service config: loopback, dry-run, bearer auth from the environment, plus `overrides` (deep-merged)."""
    config: dict[str, Any] = {
        "mode": "dry-run",
        "server": {"host": "127.0.0.1", "port": 0},
        "auth": {"mode": "bearer", "bearer_token_env": "OOM_RESPONDER_WEBHOOK_TOKEN"},
    }

    def merge(into: dict[str, Any], extra: Mapping[str, Any]) -> None:
        for key, value in extra.items():
            if isinstance(value, Mapping) and isinstance(into.get(key), dict):
                merge(into[key], value)
            else:
                into[key] = value

    merge(config, overrides)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def service_env() -> dict[str, str]:
    """The webhook token, and no default kubeconfig: without `kubernetes.kubeconfig` in its config the service
    finds no cluster and, in dry-run, plans from labels only (nothing but ingest on the hot path)."""
    return {"OOM_RESPONDER_WEBHOOK_TOKEN": TOKEN, "KUBECONFIG": "/nonexistent/oom-responder-bench/kubeconfig"}


def run_loadgen(
    *,
    url: str,
    alerts: int,
    connections: int = 16,
    rate: float | None = None,
    duration: float = 5.0,
    warmup: float = 1.0,
    seq_start: int = 0,
    token: str | None = TOKEN,
    limit: int | None = None,
    timeout: float = 200.0,
) -> dict[str, Any]:
    """Run bench.loadgen in its own process; its JSON summary. `limit` caps the closed loop's requests.

    Every call sends occurrences never sent before (a fresh run number in every fingerprint)."""
    run = payloads.new_run()
    cmd = [
        sys.executable,
        "-m",
        "bench.loadgen",
        "--url",
        url,
        "--alerts",
        str(alerts),
        "--connections",
        str(connections),
        "--duration",
        str(duration),
        "--warmup",
        str(warmup),
        "--seq-start",
        str(seq_start),
        "--run",
        str(run),
    ]
    if rate:
        cmd += ["--rate", str(rate)]
    if limit:
        cmd += ["--limit", str(limit)]
    if token:
        cmd += ["--token", token]
    out = subprocess.run(
        cmd,
        capture_output=True,
        check=True,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    result: dict[str, Any] = json.loads(out.stdout)
    result["source"] = "loadgen"
    result["run"] = run
    return result


def has_wrk() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(
    *,
    url: str,
    alerts: int,
    connections: int = 16,
    duration: float = 5.0,
    threads: int = 1,
    token: str | None = TOKEN,
) -> dict[str, Any]:
    """Closed-loop load with wrk (Debian package) and bench/wrk_webhook.lua; a summary shaped like loadgen's.

    Every call sends occurrences never sent before (a fresh run number in every fingerprint): a warm-up run
    against the same server does not turn the measured run's alerts into duplicates."""
    run = payloads.new_run()
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        f.write(payloads.template(alerts, run=run))
        template = f.name
    try:
        cmd = [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(duration))}s",
            "--timeout",
            "10s",
            "-s",
            str(BENCH_DIR / "wrk_webhook.lua"),
            url,
        ]
        env = {**os.environ, "BENCH_TEMPLATE": template, "BENCH_TOKEN": token or ""}
        out = subprocess.run(cmd, capture_output=True, check=True, timeout=duration + 60, env=env, text=True)
    finally:
        os.unlink(template)
    line = next(x for x in out.stdout.splitlines() if x.startswith("WRK_JSON "))
    raw = json.loads(line[len("WRK_JSON ") :])
    elapsed = raw["duration_us"] / 1e6
    bad = raw["errors"]["status"]
    ok = raw["requests"] - bad
    return {
        "source": "wrk",
        "run": run,
        "mode": "closed",
        "alerts_per_request": alerts,
        "connections": connections,
        "elapsed_s": elapsed,
        "requests": raw["requests"],
        "statuses": {"2xx": ok, "non-2xx": bad},
        "errors": sum(v for k, v in raw["errors"].items() if k != "status"),
        "rps": raw["requests"] / elapsed,
        "ok_rps": ok / elapsed,
        "ok_alerts_per_s": ok * alerts / elapsed,
        "latency_ms": raw["latency_ms"],
    }


def machine_info() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions: dict[str, str] = {}
    for module in ("aiohttp", "pydantic", "prometheus_client", "kubernetes_asyncio"):
        with contextlib.suppress(Exception):
            from importlib import metadata  # noqa: PLC0415

            versions[module] = metadata.version(module.replace("_", "-"))
    commit = ""
    with contextlib.suppress(Exception):
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO, check=False
        ).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "loadavg_at_start": list(os.getloadavg()),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "versions": versions,
        "commit": commit,
    }


def write_result(name: str, data: Mapping[str, Any], *, quick: bool, started: float) -> Path:
    """Write bench/results[/quick]/<name>.json with the machine, the time taken and the data."""
    path = results_dir(quick) / f"{name}.json"
    document = {
        "benchmark": name,
        "quick": quick,
        "finished_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "duration_s": round(time.perf_counter() - started, 1),
        "machine": machine_info(),
        **data,
    }
    path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")
    return path


def run_and_report(name: str, run: Callable[..., Mapping[str, Any]], *, quick: bool) -> int:
    """Run a benchmark whose result has `rows` and `notes`, write its result file and print them. A failure is
    written too (the report says why instead of silently lacking a section), then raised."""
    started = time.perf_counter()
    try:
        data = run(quick=quick)
    except Exception as e:
        failure = {"error": f"{type(e).__name__}: {e}"[:2000], "targets": []}
        write_result(name, failure, quick=quick, started=started)
        raise
    path = write_result(name, data, quick=quick, started=started)
    print(f"wrote {path}")
    for row in data["rows"]:
        print(row)
    for note in data["notes"]:
        print(note)
    return 0


@contextlib.contextmanager
def running(proc: Proc) -> Iterator[Proc]:
    try:
        yield proc
    finally:
        proc.stop()
