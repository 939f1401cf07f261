"""Start-up benchmark: process start → `/readyz` answers 200, against baselines started the same way.

Baselines: `python -c pass` (the interpreter alone, start to exit), `python -c "import aiohttp"` (the web stack's
import), and the bare aiohttp app (bench.baseline_app) start → /readyz 200. /readyz is polled every 5 ms.
The service starts with the same dry-run config as the ingest benchmark; `python -X importtime` of the serve
command is kept to show where import time goes.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import common

NAME = "startup"


def _exit_time(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=common.REPO)
    return time.perf_counter() - t0


def _ready_time(
    cmd: list[str], *, port: int, workdir: Path, env: dict[str, str] | None = None
) -> tuple[float, float]:
    """Seconds to /readyz 200, and RSS (MB) right then."""
    proc = common.start(cmd, name=f"startup-{port}", env=env, log_dir=workdir)
    try:
        elapsed = common.wait_ready(proc, f"http://127.0.0.1:{port}/readyz", timeout=60, interval=0.005)
        rss = common.rss_bytes(proc.pid) / 2**20
    finally:
        proc.stop()
    return elapsed, rss


def _import_profile(workdir: Path) -> list[dict[str, Any]]:
    """Top cumulative import times of the serve command's modules (python -X importtime)."""
    code = (
        "import responder.cli, responder.commands.serving, responder.web.app, responder.config, "
        "responder.logs, responder.metrics, responder.engine.processing, responder.engine.notifying, "
        "responder.kube.client, responder.kube.state"
    )
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        cwd=common.REPO,
        check=False,
    )
    rows = []
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        parts = line[len("import time:") :].split("|")
        if len(parts) != 3:
            continue
        name = parts[2].rstrip()
        depth = (len(name) - len(name.lstrip())) // 2
        rows.append(
            {
                "module": name.strip(),
                "self_ms": int(parts[0]) / 1000,
                "cumulative_ms": int(parts[1]) / 1000,
                "depth": depth,
            }
        )
    # Packages (root names, whoever imported them first) and the service's own top-level modules.
    top = [
        r
        for r in rows
        if "." not in r["module"] or (r["module"].startswith("responder.") and r["depth"] == 0)
    ]
    top.sort(key=lambda r: r["cumulative_ms"], reverse=True)
    return top[:15]


def run(*, quick: bool) -> dict[str, Any]:
    repeats = 3 if quick else 10
    notes: list[str] = []
    workdir = Path(tempfile.mkdtemp(prefix="oom-bench-startup-"))
    config = common.write_config(workdir / "startup.yaml", {})
    samples: dict[str, list[float]] = {
        "python -c pass": [],
        "import aiohttp": [],
        "bare aiohttp app": [],
        "service": [],
    }
    rss: dict[str, list[float]] = {"bare aiohttp app": [], "service": []}
    for _ in range(repeats):
        samples["python -c pass"].append(_exit_time([sys.executable, "-c", "pass"]))
        samples["import aiohttp"].append(_exit_time([sys.executable, "-c", "import aiohttp"]))
        port = common.free_port()
        t, r = _ready_time(
            [sys.executable, "-m", "bench.baseline_app", "--port", str(port)], port=port, workdir=workdir
        )
        samples["bare aiohttp app"].append(t)
        rss["bare aiohttp app"].append(r)
        port = common.free_port()
        t, r = _ready_time(
            common.service_command(config, port=port), port=port, workdir=workdir, env=common.service_env()
        )
        samples["service"].append(t)
        rss["service"].append(r)
    # The service as deployed: with a cluster (readiness follows the API server), on the test control plane.
    try:
        from bench import cluster  # noqa: PLC0415

        with cluster.plane() as kube:
            kube.create_namespace(cluster.OWN_NAMESPACE)
            with_cluster = cluster.service_config(workdir, kube, qps=20, burst=40)
            with_cluster.write_text(with_cluster.read_text().replace("mode: enforce", "mode: dry-run"))
            samples["service with a cluster"] = []
            rss["service with a cluster"] = []
            for _ in range(repeats):
                port = common.free_port()
                t, r = _ready_time(
                    common.service_command(with_cluster, port=port),
                    port=port,
                    workdir=workdir,
                    env=common.service_env(),
                )
                samples["service with a cluster"].append(t)
                rss["service with a cluster"].append(r)
    except Exception as e:  # no control plane here: the figures without one still stand
        samples.pop("service with a cluster", None)
        rss.pop("service with a cluster", None)
        notes.append(f"service with a cluster: not measured ({type(e).__name__}: {e})"[:300])
    rows = [
        {
            "what": name,
            "p50_s": statistics.median(values),
            "min_s": min(values),
            "max_s": max(values),
            "rss_mb": statistics.median(rss[name]) if name in rss else None,
        }
        for name, values in samples.items()
    ]
    service_p50 = max(
        statistics.median(samples["service"]),
        statistics.median(samples.get("service with a cluster") or [0.0]),
    )
    return {
        "settings": {
            "repeats": repeats,
            "poll_interval_s": 0.005,
            "service_command": common.service_command(config, port=0)[1:],
        },
        "rows": rows,
        "samples": samples,
        "imports": _import_profile(workdir),
        "notes": notes,
        "targets": [
            {
                "name": "start → /readyz 200 (p50, worse of without/with a cluster)",
                "target": "<= 1.5 s",
                "measured": service_p50,
                "ok": service_p50 <= 1.5,
            }
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.startup", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats instead of 10")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    data = run(quick=args.quick)
    path = common.write_result(NAME, data, quick=args.quick, started=started)
    print(f"wrote {path}")
    for row in data["rows"]:
        print(f"{row['what']:>18}: p50 {row['p50_s'] * 1000:7.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
