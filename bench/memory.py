"""Memory benchmark: RSS at idle, then RSS against alerts processed over 1,000,000 distinct alerts (dry-run).

The service runs with the ingest benchmark's config (dry-run, no cluster: nothing but the service's own
structures grows). Alerts are sent as 100-alert webhooks, every fingerprint new, by bench.loadgen in chunks; a
sampler thread reads VmRSS from /proc/<pid>/status and the alerts received and still queued from /metrics.
The bare aiohttp app gets the same alerts for comparison. Growth between 200,000 and 1,000,000 alerts is the
figure: every cache is bounded by config, so RSS must level off once the dedup cache is full.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench import common

NAME = "memory"
PER_WEBHOOK = 100


def _counts(port: int) -> tuple[float, float] | None:
    """(alerts received, alerts still queued) from the service's /metrics."""
    status, body = common.http_get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    if status != 200:
        return None
    text = body.decode()
    received = sum(common.metric_values(text, "oom_responder_alerts_received_total").values())
    depth = sum(common.metric_values(text, "oom_responder_queue_depth").values())
    return received, depth


class _Sampler(threading.Thread):
    def __init__(self, pid: int, port: int | None, every_s: float) -> None:
        super().__init__(daemon=True)
        self.pid, self.port, self.every_s = pid, port, every_s
        self.samples: list[dict[str, float]] = []
        self.sent = 0  # alerts accepted so far, for servers without /metrics
        self.stop_event = threading.Event()

    def sample(self) -> None:
        rss = common.rss_bytes(self.pid) / 2**20
        if self.port is not None:
            counts = _counts(self.port)
            if counts is None:
                return
            received, depth = counts
            processed = received - depth
        else:
            processed = self.sent
        self.samples.append({"t": time.perf_counter(), "alerts": processed, "rss_mb": rss})

    def run(self) -> None:
        while not self.stop_event.wait(self.every_s):
            self.sample()


def _drive(
    *, proc: common.Proc, port: int, total: int, chunk: int, with_metrics: bool, deadline: float
) -> tuple[list[dict[str, float]], int, dict[str, int]]:
    sampler = _Sampler(proc.pid, port if with_metrics else None, every_s=0.5)
    sampler.sample()
    sampler.start()
    accepted = 0
    seq = 0
    statuses: dict[str, int] = {}
    try:
        while accepted < total and time.perf_counter() < deadline:
            webhooks = min(chunk, total - accepted) // PER_WEBHOOK or 1
            result = common.run_loadgen(
                url=f"http://127.0.0.1:{port}/webhook",
                alerts=PER_WEBHOOK,
                connections=8,
                duration=110,
                warmup=0,
                seq_start=seq,
                limit=webhooks,
            )
            seq = result["last_seq"] + 1
            for k, v in result["statuses"].items():
                statuses[k] = statuses.get(k, 0) + v
            accepted += result["statuses"].get("202", 0) * PER_WEBHOOK
            sampler.sent = accepted
            if result["statuses"].get("503"):
                time.sleep(0.5)  # queue full: let it drain, as Alertmanager's retry back-off would
        # Let the queue drain, then a last sample.
        while with_metrics and time.perf_counter() < deadline:
            counts = _counts(port)
            if counts is None or counts[1] == 0:
                break
            time.sleep(0.2)
        time.sleep(1.0)
    finally:
        sampler.stop_event.set()
        sampler.join()
    sampler.sample()
    return sampler.samples, accepted, statuses


def _at(samples: list[dict[str, float]], alerts: float) -> dict[str, float] | None:
    """The first sample at or past `alerts` processed."""
    for s in samples:
        if s["alerts"] >= alerts:
            return s
    return None


def _pipeline(*, total: int, workdir: Path) -> dict[str, Any]:
    """The real Processor in dry-run against the test control plane, alerts for pods that do not exist.

    Each alert costs the pipeline a pod read (404) and a look through the namespace's ledgers before it is
    skipped as target-not-found, so it walks the Processor, the Kubernetes client and the reporting, at a few
    API requests per alert: fewer alerts than the label-only run, enough to see whether anything grows.
    """
    from bench import cluster  # noqa: PLC0415 - needs the control plane's test support

    with cluster.plane() as kube:
        kube.create_namespace(cluster.OWN_NAMESPACE)
        config = cluster.service_config(workdir, kube, qps=5000, burst=5000)
        text = (
            config.read_text()
            .replace("mode: enforce", "mode: dry-run")
            .replace("max_pending: 100000", "max_pending: 10000")
        )
        config.write_text(text)
        port = common.free_port()
        proc = common.start(
            common.service_command(config, port=port),
            name="service-pipeline",
            env=common.service_env(),
            log_dir=workdir,
        )
        try:
            common.wait_ready(proc, f"http://127.0.0.1:{port}/readyz", timeout=60)
            time.sleep(2.0)
            idle_mb = common.rss_bytes(proc.pid) / 2**20
            t0 = time.perf_counter()
            samples, accepted, statuses = _drive(
                proc=proc,
                port=port,
                total=total,
                chunk=min(total, 20_000),
                with_metrics=True,
                deadline=time.perf_counter() + 900,
            )
            elapsed = time.perf_counter() - t0
            requests = sum(
                common.metric_values(
                    common.http_get(f"http://127.0.0.1:{port}/metrics")[1].decode(),
                    "oom_responder_kube_requests_total",
                ).values()
            )
        finally:
            proc.stop()
    for s in samples:
        s.pop("t", None)
    low = total // 5
    at_low = _at(samples, low)
    growth = samples[-1]["rss_mb"] - at_low["rss_mb"] if at_low and samples else None
    return {
        "alerts": total,
        "accepted": accepted,
        "statuses": statuses,
        "elapsed_s": elapsed,
        "kube_requests": requests,
        "idle_mb": idle_mb,
        "low": low,
        "rss_mb_at_low": at_low["rss_mb"] if at_low else None,
        "rss_mb_end": samples[-1]["rss_mb"] if samples else None,
        "growth_mb_low_to_end": growth,
        "samples": samples,
    }


def run(*, quick: bool) -> dict[str, Any]:
    total = 100_000 if quick else 1_000_000
    chunk = 20_000 if quick else 100_000
    workdir = Path(tempfile.mkdtemp(prefix="oom-bench-memory-"))
    config = common.write_config(workdir / "memory.yaml", {})
    deadline = time.perf_counter() + (240 if quick else 1500)
    port = common.free_port()
    proc = common.start(
        common.service_command(config, port=port), name="service", env=common.service_env(), log_dir=workdir
    )
    try:
        common.wait_ready(proc, f"http://127.0.0.1:{port}/readyz")
        time.sleep(2.0)
        idle_mb = common.rss_bytes(proc.pid) / 2**20
        t0 = time.perf_counter()
        samples, accepted, statuses = _drive(
            proc=proc, port=port, total=total, chunk=chunk, with_metrics=True, deadline=deadline
        )
        elapsed = time.perf_counter() - t0
        final_mb = common.rss_bytes(proc.pid) / 2**20
    finally:
        proc.stop()
    # The baseline gets the same alerts: the stack's own RSS under the same traffic.
    bport = common.free_port()
    bproc = common.start(
        [sys.executable, "-m", "bench.baseline_app", "--port", str(bport), "--token", common.TOKEN],
        name="baseline",
        log_dir=workdir,
    )
    try:
        common.wait_ready(bproc, f"http://127.0.0.1:{bport}/readyz")
        time.sleep(1.0)
        baseline_idle_mb = common.rss_bytes(bproc.pid) / 2**20
        bsamples, _, _ = _drive(
            proc=bproc,
            port=bport,
            total=total,
            chunk=chunk,
            with_metrics=False,
            deadline=time.perf_counter() + 300,
        )
    finally:
        bproc.stop()
    for s in samples + bsamples:
        s.pop("t", None)
    low = total // 5
    at_low = _at(samples, low)
    at_high = samples[-1] if samples else None
    growth = (at_high["rss_mb"] - at_low["rss_mb"]) if at_low and at_high else None
    points = [
        {"label": "idle (2 s after ready)", "alerts": 0, "rss_mb": idle_mb},
        {
            "label": f"first sample past {low:,}",
            "alerts": int(at_low["alerts"]) if at_low else None,
            "rss_mb": at_low["rss_mb"] if at_low else None,
        },
        {
            "label": "end (queue drained)",
            "alerts": int(at_high["alerts"]) if at_high else None,
            "rss_mb": at_high["rss_mb"] if at_high else None,
        },
        {"label": "peak", "alerts": None, "rss_mb": max(s["rss_mb"] for s in samples) if samples else None},
        {"label": "bare aiohttp idle", "alerts": 0, "rss_mb": baseline_idle_mb},
        {
            "label": "bare aiohttp end",
            "alerts": int(bsamples[-1]["alerts"]) if bsamples else None,
            "rss_mb": bsamples[-1]["rss_mb"] if bsamples else None,
        },
    ]
    settings = {
        "alerts": total,
        "alerts_per_webhook": PER_WEBHOOK,
        "pipeline": "label-only planning, no cluster, INFO logs to a file",
        "caches": "dedup.max_entries 100,000 (TTL 6 h), queue.max_pending 10,000 (defaults)",
    }
    settings["sample_every"] = int(
        max(1, accepted / max(1, len(samples)))
    )  # on average (sampled every 0.5 s)
    try:
        pipeline: dict[str, Any] | None = _pipeline(total=5_000 if quick else 60_000, workdir=workdir)
    except Exception as e:  # no control plane on this machine: the label-only figures still stand
        pipeline = {"error": f"{type(e).__name__}: {e}"[:500]}
    return {
        "pipeline": pipeline,
        "settings": settings,
        "idle_mb": idle_mb,
        "final_mb": final_mb,
        "accepted_alerts": accepted,
        "statuses": statuses,
        "elapsed_s": elapsed,
        "growth_mb_low_to_end": growth,
        "points": points,
        "samples": samples,
        "baseline_samples": bsamples,
        "targets": [
            {"name": "RSS at idle", "target": "<= 80 MB", "measured": idle_mb, "ok": idle_mb <= 80},
            {
                "name": f"RSS growth {low:,} → {total:,} alerts",
                "target": "<= 10 MB",
                "measured": growth,
                "ok": growth is not None and growth <= 10,
            },
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 alerts instead of 1,000,000")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    data = run(quick=args.quick)
    path = common.write_result(NAME, data, quick=args.quick, started=started)
    print(f"wrote {path}")
    print(
        f"idle {data['idle_mb']:.1f} MB, end {data['final_mb']:.1f} MB, growth {data['growth_mb_low_to_end']} MB, "
        f"{data['accepted_alerts']:,} alerts in {data['elapsed_s']:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
