"""Reaction time with the memory analysis on, against the same flow without it: `python -m bench.analysis`.

Runs the reaction benchmark (`bench/reaction.py`: OOMKilled alerts one at a time, each on its own Deployment,
webhook sent → the mitigation's write seen by a watch) with two services on one control plane, sent alerts
in turn: one without `prometheus:`, one with `prometheus.url` pointing at a real Prometheus on loopback
(Debian's binary, tests/promstack) whose TSDB was backfilled with a day of working-set, limit and restart
history for every staged pod (half of the workloads leaking, half stable). Taking turns, both meet the same
load on a shared machine, so the ratio between them means something even when the absolute figures move. With the analysis on, every alert costs the history read (4 range queries,
1,440 points per series) and the classification before the plan. Target (issue 12): reaction p99 with the
analysis ≤ 250 ms; the ratio to the run without it is reported beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import common, loadgen, reaction
from tests.promstack import stack as promstack

NAME = "analysis"
MI = 2**20


def _history(workloads: list[dict[str, str]], *, end: float) -> list[promstack.Series]:
    """A day of history for every staged pod: even-numbered workloads leak 10 MiB/h, odd ones are flat."""
    series: list[promstack.Series] = []
    times = [end - 86400 + 60 * i for i in range(1441)]
    for i, w in enumerate(workloads):
        labels = {"namespace": reaction.NAMESPACE, "pod": w["pod"], "container": w["container"]}
        if i % 2 == 0:
            values = [60 * MI + 10 * MI * (t - times[0]) / 3600 for t in times]
        else:
            values = [100 * MI + (MI if j % 7 == 0 else 0) for j, _ in enumerate(times)]
        series.append(
            promstack.Series(
                "container_memory_working_set_bytes",
                {**labels, "image": "bench"},
                list(zip(times, values, strict=True)),
            )
        )
        series.append(
            promstack.Series(
                "kube_pod_container_resource_limits",
                {**labels, "resource": "memory"},
                [(t, 512.0 * MI) for t in times[::5]],
            )
        )
        series.append(
            promstack.Series(
                "kube_pod_container_status_restarts_total", labels, [(t, 1.0) for t in times[::5]]
            )
        )
    return series


def run(*, quick: bool) -> dict[str, Any]:
    why = promstack.missing_binaries()
    if why:
        raise RuntimeError(why)
    count = 20 if quick else 200
    workdir = Path(tempfile.mkdtemp(prefix="oom-bench-analysis-"))
    started: list[promstack.PromStack] = []
    prom_log = ""

    def serve_prometheus(workloads: list[dict[str, str]]) -> dict[str, dict[str, Any]]:
        end = float(int(time.time() // 60 * 60))
        storage = workdir / "tsdb"
        promstack.backfill(_history(workloads, end=end), storage)
        started.append(promstack.start(storage))
        return {"with": {"prometheus": {"url": started[0].url, "timeout_seconds": 5}}}

    try:
        arms = asyncio.run(
            reaction._run(
                count=count, workdir=workdir, arms={"without": {}, "with": {}}, before_serve=serve_prometheus
            )
        )
    finally:
        for s in started:
            s.stop()
            prom_log = s.log.read_text()[-2000:]
    without, with_analysis = arms["without"], arms["with"]
    off = loadgen.percentiles(without["reaction_s"])
    on = loadgen.percentiles(with_analysis["reaction_s"])
    rows = [
        {
            "name": "without analysis",
            "n": len(without["reaction_s"]),
            **{k: off.get(k) for k in ("p50", "p90", "p99", "max")},
        },
        {
            "name": "with analysis",
            "n": len(with_analysis["reaction_s"]),
            **{k: on.get(k) for k in ("p50", "p90", "p99", "max")},
        },
    ]
    p99_on = on.get("p99")
    p99_off = off.get("p99")
    ratio = p99_on / p99_off if p99_on and p99_off else None
    missed = without["missed"] + with_analysis["missed"]
    notes = [
        f"Without analysis: {without['mitigated']} of {count} mitigated, {len(without['missed'])} not seen within 15 s.",
        f"With analysis: {with_analysis['mitigated']} of {count} mitigated, {len(with_analysis['missed'])} not seen within 15 s.",
        f"p99 ratio with / without: {ratio:.2f}." if ratio else "p99 ratio: not measured.",
    ]
    load = common.machine_info().get("loadavg_at_start") or []
    if load:
        notes.append(f"Load average when the run started: {', '.join(f'{x:.1f}' for x in load)} (2 cores).")
    if missed and prom_log:
        notes.append(f"Prometheus log tail: {prom_log}")
    return {
        "settings": {
            "alerts": count,
            "how": "two services on one control plane, without and with prometheus.url, alerts sent to them in "
            "turn (one at a time, each on its own workload), so that both meet the same load",
        },
        "rows": rows,
        "notes": notes,
        "raw": {
            "without": {k: v for k, v in without.items() if k != "ack_s"},
            "with": {k: v for k, v in with_analysis.items() if k != "ack_s"},
        },
        "targets": [
            {
                "name": "reaction p99 with the memory analysis (loopback Prometheus)",
                "target": "<= 250 ms",
                "measured": p99_on,
                "ok": p99_on is not None and p99_on <= 250 and not missed,
            }
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.analysis", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 alerts per run instead of 200")
    args = parser.parse_args(argv)
    return common.run_and_report(NAME, run, quick=args.quick)


if __name__ == "__main__":
    sys.exit(main())
