"""Ingest benchmark: webhooks/s and alerts/s answered 202, service vs the bare aiohttp ceiling, same run.

For payloads of 1, 10 and 100 alerts (distinct fingerprints), each server is started fresh and loaded:
1. closed loop (wrk if installed, else bench.loadgen) for the maximum rate; the server's CPU time per webhook
   is read from /proc so the comparison holds even when other work shares the machine;
2. open loop (bench.loadgen) at half of that maximum for the acknowledgement latency p50/p99.
Runs alternate baseline/service to spread drift over both. The load generators' own ceiling is measured
against bench.null_server. The service runs in dry-run with bearer auth and no cluster (`serve` plans from
labels until a cluster is configured), i.e. nothing but ingest on the hot path.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import common

NAME = "ingest"
SIZES = (1, 10, 100)


def _queue_pending(port: int) -> int | None:
    status, body = common.http_get(f"http://127.0.0.1:{port}/readyz")
    if status == 0:
        return None
    import json  # noqa: PLC0415

    try:
        return int(json.loads(body).get("queue", {}).get("pending", 0))
    except (ValueError, AttributeError):
        return None


def _wait_drained(port: int, timeout: float) -> float | None:
    """Seconds until the service's queue is empty (None: not a service, or not drained in time)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        pending = _queue_pending(port)
        if pending is None:
            return None
        if pending == 0:
            return time.perf_counter() - t0
        time.sleep(0.05)
    return None


def _non_2xx(result: dict[str, Any]) -> int:
    return sum(v for k, v in result["statuses"].items() if not k.startswith("2"))


def _start(target: str, *, port: int, workdir: Path) -> common.Proc:
    if target == "baseline":
        cmd = [sys.executable, "-m", "bench.baseline_app", "--port", str(port), "--token", common.TOKEN]
        proc = common.start(cmd, name=f"baseline-{port}", log_dir=workdir)
    elif target == "null":
        cmd = [sys.executable, "-m", "bench.null_server", "--port", str(port)]
        proc = common.start(cmd, name=f"null-{port}", log_dir=workdir)
        deadline = time.perf_counter() + 10
        while time.perf_counter() < deadline and "listening" not in proc.tail():
            time.sleep(0.02)
        return proc
    elif target == "service-warning-logs":
        # The same service with per-alert INFO log lines off: what logging costs on the hot path.
        config = common.write_config(workdir / "ingest-warning.yaml", {"logging": {"level": "WARNING"}})
        proc = common.start(
            common.service_command(config, port=port),
            name=f"service-w-{port}",
            env=common.service_env(),
            log_dir=workdir,
        )
    else:
        config = common.write_config(workdir / "ingest.yaml", {})
        proc = common.start(
            common.service_command(config, port=port),
            name=f"service-{port}",
            env=common.service_env(),
            log_dir=workdir,
        )
    common.wait_ready(proc, f"http://127.0.0.1:{port}/readyz")
    return proc


def _closed(
    target: str, size: int, *, duration: float, warmup: float, use_wrk: bool, workdir: Path
) -> dict[str, Any]:
    port = common.free_port()
    proc = _start(target, port=port, workdir=workdir)
    url = f"http://127.0.0.1:{port}/webhook"
    try:
        if use_wrk and warmup:
            common.run_wrk(url=url, alerts=size, duration=warmup)
        cpu0 = common.cpu_seconds(proc.pid)
        if use_wrk:
            result = common.run_wrk(url=url, alerts=size, duration=duration)
        else:
            result = common.run_loadgen(url=url, alerts=size, duration=duration, warmup=warmup)
        cpu = common.cpu_seconds(proc.pid) - cpu0
        result["server_cpu_s"] = cpu
        ok = result["ok_rps"] * result["elapsed_s"]
        result["server_cpu_us_per_ok_webhook"] = cpu / ok * 1e6 if ok else None
        is_service = target.startswith("service")
        result["queue_pending_after"] = _queue_pending(port) if is_service else None
        if is_service:
            result["drain_s"] = _wait_drained(port, timeout=120)
        result["rss_mb_after"] = common.rss_bytes(proc.pid) / 2**20
    finally:
        proc.stop()
    result["target"] = target
    return result


def _open(
    target: str, size: int, *, rate: float, duration: float, warmup: float, workdir: Path
) -> dict[str, Any]:
    port = common.free_port()
    proc = _start(target, port=port, workdir=workdir)
    try:
        result = common.run_loadgen(
            url=f"http://127.0.0.1:{port}/webhook", alerts=size, rate=rate, duration=duration, warmup=warmup
        )
    finally:
        proc.stop()
    result["target"] = target
    return result


def run(*, quick: bool) -> dict[str, Any]:
    duration = 2.0 if quick else 10.0
    warmup = 1.0 if quick else 2.0
    repeats = 1 if quick else 3
    use_wrk = common.has_wrk()
    workdir = Path(tempfile.mkdtemp(prefix="oom-bench-ingest-"))
    ceiling: dict[str, Any] = {}
    for size in SIZES:
        ceiling[str(size)] = {
            "wrk": _closed("null", size, duration=duration, warmup=0, use_wrk=True, workdir=workdir)
            if use_wrk
            else None,
            "loadgen": _closed(
                "null", size, duration=duration, warmup=warmup, use_wrk=False, workdir=workdir
            ),
        }
    closed: dict[str, dict[str, list[dict[str, Any]]]] = {"baseline": {}, "service": {}}
    # Sizes outermost, targets alternating within: drift (other work on the machine) hits both alike.
    for rep in range(repeats):
        order = ("baseline", "service") if rep % 2 == 0 else ("service", "baseline")
        for size in SIZES:
            for target in order:
                run_ = _closed(
                    target, size, duration=duration, warmup=warmup, use_wrk=use_wrk, workdir=workdir
                )
                closed[target].setdefault(str(size), []).append(run_)
    rows = []
    latency: dict[str, dict[str, Any]] = {"baseline": {}, "service": {}, "null": {}}
    for size in SIZES:
        row: dict[str, Any] = {"alerts_per_webhook": size}
        for target in ("baseline", "service"):
            runs = closed[target][str(size)]
            row[f"{target}_webhooks_per_s"] = statistics.median(r["ok_rps"] for r in runs)
            row[f"{target}_alerts_per_s"] = row[f"{target}_webhooks_per_s"] * size
            row[f"{target}_cpu_us_per_webhook"] = statistics.median(
                r["server_cpu_us_per_ok_webhook"] or 0 for r in runs
            )
            row[f"{target}_non_2xx"] = sum(_non_2xx(r) for r in runs)
        row["ratio"] = row["service_webhooks_per_s"] / row["baseline_webhooks_per_s"]
        variant = _closed(
            "service-warning-logs", size, duration=duration, warmup=warmup, use_wrk=use_wrk, workdir=workdir
        )
        closed.setdefault("service-warning-logs", {})[str(size)] = [variant]
        row["service_warning_logs_webhooks_per_s"] = variant["ok_rps"]
        row["service_warning_logs_cpu_us_per_webhook"] = variant["server_cpu_us_per_ok_webhook"]
        row["cpu_ratio"] = row["baseline_cpu_us_per_webhook"] / row["service_cpu_us_per_webhook"]
        # The floor of the latency measurement itself: the generator against the null server at the same rate.
        floor = _open(
            "null",
            size,
            rate=row["service_webhooks_per_s"] / 2,
            duration=duration,
            warmup=warmup,
            workdir=workdir,
        )
        latency.setdefault("null", {})[str(size)] = floor
        row["generator_floor_ack_p99_ms"] = floor["latency_ms"].get("p99")
        for target in ("baseline", "service"):
            rate = row[f"{target}_webhooks_per_s"] / 2
            lat = _open(target, size, rate=rate, duration=duration, warmup=warmup, workdir=workdir)
            latency[target][str(size)] = lat
            row[f"{target}_half_rate"] = rate
            row[f"{target}_ack_p50_ms"] = lat["latency_ms"].get("p50")
            row[f"{target}_ack_p99_ms"] = lat["latency_ms"].get("p99")
        rows.append(row)
    worst_ratio = min(r["ratio"] for r in rows)
    worst_p99 = max(r["service_ack_p99_ms"] or 0 for r in rows)
    return {
        "settings": {
            "duration_s": duration,
            "warmup_s": warmup,
            "repeats": repeats,
            "closed_loop_source": "wrk" if use_wrk else "loadgen",
            "open_loop_source": "loadgen",
            "connections": 16,
            "service_command": common.service_command(Path("ingest.yaml"), port=0)[1:],
        },
        "rows": rows,
        "generator_ceiling": ceiling,
        "closed_runs": closed,
        "latency_runs": latency,
        "targets": [
            {
                "name": "ingest throughput vs bare aiohttp (worst payload size)",
                "target": ">= 0.70",
                "measured": worst_ratio,
                "ok": worst_ratio >= 0.70,
            },
            {
                "name": "ack p99 at half the max rate (worst payload size)",
                "target": "<= 10 ms",
                "measured": worst_p99,
                "ok": worst_p99 <= 10.0,
            },
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs, one repeat (smoke test)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    data = run(quick=args.quick)
    path = common.write_result(NAME, data, quick=args.quick, started=started)
    print(f"wrote {path}")
    for row in data["rows"]:
        print(
            f"{row['alerts_per_webhook']:>4} alerts: service {row['service_webhooks_per_s']:8.0f}/s "
            f"baseline {row['baseline_webhooks_per_s']:8.0f}/s ratio {row['ratio']:.2f} "
            f"(cpu ratio {row['cpu_ratio']:.2f}) ack p99 {row['service_ack_p99_ms']:.1f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
