"""Ingest benchmark: what a webhook costs the service, against two baselines doing (part of) the same job.

Servers, each started fresh for every load:
* `baseline`: bare aiohttp, `json.loads` and a 202 (bench.baseline_app): the stack's ceiling, validates nothing;
* `fair`: a validating receiver as a peer would write it (bench.fair_baseline_app): bearer token, content
  type, `model_validate_json` of the v4 payload, every alert on a bounded queue, 503 when full;
* `service`: `oom-responder serve` in dry-run with bearer auth and no cluster (it plans from labels), INFO logs
  as shipped; and the same at WARNING, once per size, to show what logging costs.

For payloads of 1, 10 and 100 alerts:
1. closed loop (wrk if installed, else bench.loadgen), alternating the servers' order between repeats: the
   rate, and the server's CPU time per webhook read from /proc (it does not depend on how much of a shared
   machine the server got); the marginal CPU per alert is (CPU per 100-alert webhook - per 1-alert) / 99;
2. open loop (bench.loadgen) at fixed rates of 10, 100 and 1,000 webhooks/s (1- and 10-alert payloads):
   acknowledgement p50/p99, measured from each request's due time;
3. a burst: 2,000 webhooks in one second against a fresh service with the default queue size: every one
   must be answered 202.

Every load sends occurrences never sent before (bench.payloads: a fresh run number in every fingerprint), so a
warm-up does not turn the measured run's alerts into duplicates; the service's own deduplication counter is
read around every measured run and reported. The load generators' own ceiling is measured against
bench.null_server, and so is the open loop's latency floor at every rate.
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
RATES = (10, 100, 1000)
"""Fixed open-loop rates, webhooks/s: an Alertmanager's ordinary day to a bad storm."""
RATE_SIZES = (1, 10)
BURST = 2000
"""Webhooks sent within one second against a fresh service with the default queue size."""
CLOSED = ("baseline", "fair", "service")


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


def _deduplicated(port: int) -> float:
    """The service's count of alerts it found already queued (a repeat delivery)."""
    _, body = common.http_get(f"http://127.0.0.1:{port}/metrics")
    values = common.metric_values(body.decode(), "oom_responder_alerts_deduplicated_total")
    return sum(values.values())


def _non_2xx(result: dict[str, Any]) -> int:
    return sum(v for k, v in result["statuses"].items() if not k.startswith("2"))


def _start(target: str, *, port: int, workdir: Path) -> common.Proc:
    if target in ("baseline", "fair"):
        module = "bench.baseline_app" if target == "baseline" else "bench.fair_baseline_app"
        cmd = [sys.executable, "-m", module, "--port", str(port), "--token", common.TOKEN]
        proc = common.start(cmd, name=f"{target}-{port}", log_dir=workdir)
    elif target == "null":
        cmd = [sys.executable, "-m", "bench.null_server", "--port", str(port)]
        proc = common.start(cmd, name=f"null-{port}", log_dir=workdir)
        deadline = time.perf_counter() + 10
        while time.perf_counter() < deadline and "listening" not in proc.tail():
            time.sleep(0.02)
        return proc
    elif target == "service-warning-logs":
        # The same service with INFO log lines off: what logging costs on the hot path.
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
    is_service = target.startswith("service")
    try:
        if use_wrk and warmup:
            common.run_wrk(url=url, alerts=size, duration=warmup)
        deduplicated0 = _deduplicated(port) if is_service else 0.0
        cpu0 = common.cpu_seconds(proc.pid)
        if use_wrk:
            result = common.run_wrk(url=url, alerts=size, duration=duration)
        else:
            result = common.run_loadgen(url=url, alerts=size, duration=duration, warmup=warmup)
        cpu = common.cpu_seconds(proc.pid) - cpu0
        result["server_cpu_s"] = cpu
        ok = result["ok_rps"] * result["elapsed_s"]
        result["server_cpu_us_per_ok_webhook"] = cpu / ok * 1e6 if ok else None
        result["queue_pending_after"] = _queue_pending(port) if is_service else None
        if is_service:
            result["drain_s"] = _wait_drained(port, timeout=120)
            # CPU per webhook includes working off the queue after the load (the decisions).
            cpu = common.cpu_seconds(proc.pid) - cpu0
            result["server_cpu_s"] = cpu
            result["server_cpu_us_per_ok_webhook"] = cpu / ok * 1e6 if ok else None
            result["duplicates_measured"] = _deduplicated(port) - deduplicated0
        result["rss_mb_after"] = common.rss_bytes(proc.pid) / 2**20
    finally:
        proc.stop()
    result["target"] = target
    return result


def _open(
    target: str,
    size: int,
    *,
    rate: float,
    duration: float,
    warmup: float,
    workdir: Path,
    connections: int = 32,
) -> dict[str, Any]:
    port = common.free_port()
    proc = _start(target, port=port, workdir=workdir)
    try:
        result = common.run_loadgen(
            url=f"http://127.0.0.1:{port}/webhook",
            alerts=size,
            rate=rate,
            duration=duration,
            warmup=warmup,
            connections=connections,
        )
        if target.startswith("service"):
            result["drain_s"] = _wait_drained(port, timeout=120)
            result["deduplicated"] = _deduplicated(port)
    finally:
        proc.stop()
    result["target"] = target
    return result


def _marginal(rows: list[dict[str, Any]], target: str) -> float | None:
    """CPU µs per extra alert: the slope between the 1- and the 100-alert webhook."""
    by_size = {r["alerts_per_webhook"]: r.get(f"{target}_cpu_us_per_webhook") for r in rows}
    low, high = by_size.get(SIZES[0]), by_size.get(SIZES[-1])
    if low is None or high is None:
        return None
    return float((high - low) / (SIZES[-1] - SIZES[0]))


def run(*, quick: bool) -> dict[str, Any]:
    duration = 2.0 if quick else 8.0
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
    closed: dict[str, dict[str, list[dict[str, Any]]]] = {target: {} for target in CLOSED}
    # Sizes outermost, servers rotating within: drift (other work on the machine) hits all alike.
    for rep in range(repeats):
        order = CLOSED[rep % len(CLOSED) :] + CLOSED[: rep % len(CLOSED)]
        for size in SIZES:
            for target in order:
                run_ = _closed(
                    target, size, duration=duration, warmup=warmup, use_wrk=use_wrk, workdir=workdir
                )
                closed[target].setdefault(str(size), []).append(run_)
    rows = []
    for size in SIZES:
        row: dict[str, Any] = {"alerts_per_webhook": size}
        for target in CLOSED:
            runs = closed[target][str(size)]
            row[f"{target}_webhooks_per_s"] = statistics.median(r["ok_rps"] for r in runs)
            row[f"{target}_alerts_per_s"] = row[f"{target}_webhooks_per_s"] * size
            row[f"{target}_cpu_us_per_webhook"] = statistics.median(
                r["server_cpu_us_per_ok_webhook"] or 0 for r in runs
            )
            row[f"{target}_non_2xx"] = sum(_non_2xx(r) for r in runs)
        row["service_duplicates_measured"] = sum(
            r.get("duplicates_measured", 0) for r in closed["service"][str(size)]
        )
        row["ratio"] = row["service_webhooks_per_s"] / row["baseline_webhooks_per_s"]
        row["ratio_fair"] = row["service_webhooks_per_s"] / row["fair_webhooks_per_s"]
        row["cpu_vs_fair"] = row["service_cpu_us_per_webhook"] / row["fair_cpu_us_per_webhook"]
        variant = _closed(
            "service-warning-logs", size, duration=duration, warmup=warmup, use_wrk=use_wrk, workdir=workdir
        )
        closed.setdefault("service-warning-logs", {})[str(size)] = [variant]
        row["service_warning_logs_webhooks_per_s"] = variant["ok_rps"]
        row["service_warning_logs_cpu_us_per_webhook"] = variant["server_cpu_us_per_ok_webhook"]
        rows.append(row)
    marginal = {target: _marginal(rows, target) for target in (*CLOSED, "service_warning_logs")}

    # Acknowledgement latency at fixed rates, with the generator's own floor at each.
    latency_rows = []
    latency_runs: dict[str, Any] = {}
    for size in RATE_SIZES:
        for rate in RATES:
            # At least ~200 requests per measurement, so that p99 is not just the maximum of a few.
            measured = max(duration, 200 / rate) if not quick else max(duration, 20 / rate)
            entry: dict[str, Any] = {"alerts_per_webhook": size, "rate": rate}
            # The generator against a server that does nothing, at the same rate: the floor under every figure.
            for target in ("null", "fair", "service"):
                lat = _open(target, size, rate=rate, duration=measured, warmup=warmup, workdir=workdir)
                latency_runs[f"{target}/{size}/{rate}"] = lat
                entry[f"{target}_ack_p50_ms"] = lat["latency_ms"].get("p50")
                entry[f"{target}_ack_p99_ms"] = lat["latency_ms"].get("p99")
                entry[f"{target}_non_2xx"] = _non_2xx(lat)
                entry[f"{target}_achieved_rps"] = lat["rps"]
            latency_rows.append(entry)

    bursts = []
    for size in (1, 10):
        lat = _open("service", size, rate=BURST, duration=1.0, warmup=0.0, workdir=workdir, connections=64)
        bursts.append(
            {
                "alerts_per_webhook": size,
                "webhooks": lat["requests"],
                "statuses": lat["statuses"],
                "non_2xx": _non_2xx(lat),
                "errors": lat["errors"],
                "ack_p50_ms": lat["latency_ms"].get("p50"),
                "ack_p99_ms": lat["latency_ms"].get("p99"),
                "ack_max_ms": lat["latency_ms"].get("max"),
                "drain_s": lat.get("drain_s"),
                "duplicates": lat.get("deduplicated"),
            }
        )
        latency_runs[f"burst/{size}"] = lat

    one = rows[0]
    worst_p99 = max(r["service_ack_p99_ms"] or 0 for r in latency_rows)
    burst_refused = sum(b["non_2xx"] + b["errors"] for b in bursts)
    duplicates = sum(r["service_duplicates_measured"] for r in rows)
    return {
        "settings": {
            "duration_s": duration,
            "warmup_s": warmup,
            "repeats": repeats,
            "closed_loop_source": "wrk" if use_wrk else "loadgen",
            "open_loop_source": "loadgen",
            "connections": 16,
            "rates": list(RATES),
            "burst_webhooks": BURST,
            "service_command": common.service_command(Path("ingest.yaml"), port=0)[1:],
        },
        "rows": rows,
        "marginal_cpu_us_per_alert": marginal,
        "latency_rows": latency_rows,
        "bursts": bursts,
        "generator_ceiling": ceiling,
        "closed_runs": closed,
        "latency_runs": latency_runs,
        "targets": [
            {
                "name": "CPU per 1-alert webhook vs the fair validating baseline",
                "target": "<= 2.0 x",
                "measured": one["cpu_vs_fair"],
                "ok": one["cpu_vs_fair"] <= 2.0,
            },
            {
                "name": "marginal CPU per extra alert, INFO logs (us)",
                "target": "<= 25",
                "measured": marginal["service"],
                "ok": marginal["service"] is not None and marginal["service"] <= 25.0,
            },
            {
                "name": "ack p99 at 10 / 100 / 1,000 webhooks/s, worst (ms)",
                "target": "<= 10 ms",
                "measured": worst_p99,
                "ok": worst_p99 <= 10.0,
            },
            {
                "name": f"{BURST:,} webhooks in one second: refused or failed",
                "target": "0",
                "measured": burst_refused,
                "ok": burst_refused == 0,
            },
            {
                "name": "duplicates among the measured alerts (distinct in every run)",
                "target": "0",
                "measured": duplicates,
                "ok": duplicates == 0,
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
            f"{row['service_cpu_us_per_webhook']:8.1f} us; fair {row['fair_webhooks_per_s']:8.0f}/s "
            f"{row['fair_cpu_us_per_webhook']:8.1f} us; bare {row['baseline_webhooks_per_s']:8.0f}/s "
            f"{row['baseline_cpu_us_per_webhook']:8.1f} us"
        )
    print("marginal us/alert:", data["marginal_cpu_us_per_alert"])
    for t in data["targets"]:
        print(f"{t['name']}: {t['measured']} (target {t['target']}) {'met' if t['ok'] else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
