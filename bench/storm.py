"""Storm benchmark: 1,000 OOMKilled alerts over 200 workloads in one burst, API client limited to Q requests/s.

On the test control plane, 200 one-replica Deployments have their pod OOMKilled. Each workload gets five
alerts, as an HA pair of Alertmanagers and their repeats would send them: the occurrence three times
(peer A, peer B, a repeat notification) and two re-fired occurrences of the same kill (new startsAt, same
`lastState.terminated`), which must be recognised as already handled. The 1,000 alerts are shuffled into
webhooks of 10 and posted all at once. The service runs in enforce mode with `kubernetes.qps` = Q and every
guardrail wide open, so the client-side limiter is what paces the work.

Measured: time to drain (first send → every workload mitigated and the queue empty), API requests issued
(`oom_responder_kube_requests_total`), duplicate mitigations (ledger entries beyond the first per occurrence,
and workloads written more than once: both must be 0), against the ideal: the requests one isolated alert
needs up to its write (calibrated on 5 extra workloads before the storm) × workloads, less the burst, ÷ Q.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench import cluster, common

NAME = "storm"
NAMESPACE = "bench-storm"
CALIBRATION_NS = "bench-storm-calibration"
QPS = 20.0
BURST = 40
PER_WORKLOAD = 5
PER_WEBHOOK = 10


def _requests(port: int) -> float:
    return sum(cluster.kube_requests(port).values())


async def _calibrate(
    api: Any, http: aiohttp.ClientSession, *, url: str, port: int, workloads: list[dict[str, str]]
) -> list[float]:
    """Requests issued per isolated alert, send → its write seen (the queue otherwise idle)."""
    per_alert: list[float] = []
    async with cluster.Watcher(api, CALIBRATION_NS).running() as watcher:
        for i, workload in enumerate(workloads):
            seen = watcher.event_for(workload["deployment"])
            before = _requests(port)
            alert = cluster.oom_alert(
                workload, CALIBRATION_NS, fingerprint=f"{0xCA000000 + i:016x}", starts_at=cluster.rfc3339()
            )
            await cluster.post(http, url, [alert])
            await asyncio.wait_for(seen.wait(), 30)
            per_alert.append(_requests(port) - before)
            # Let its verification finish polling so the next calibration alert runs alone.
            await asyncio.sleep(3.0)
    return per_alert


def _storm_alerts(workloads: list[dict[str, str]]) -> list[dict[str, Any]]:
    base = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=30)
    alerts = []
    for i, workload in enumerate(workloads):
        fingerprint = f"{0x57000000 + i:016x}"
        first = cluster.rfc3339(base)
        for starts_at in (
            first,
            first,
            first,
            cluster.rfc3339(base + datetime.timedelta(minutes=5)),
            cluster.rfc3339(base + datetime.timedelta(minutes=10)),
        ):
            alerts.append(
                cluster.oom_alert(workload, NAMESPACE, fingerprint=fingerprint, starts_at=starts_at)
            )
    random.Random(8).shuffle(alerts)
    return alerts


async def _run(*, count: int, workdir: Path) -> dict[str, Any]:
    with cluster.plane() as kube:
        for ns in (cluster.OWN_NAMESPACE, NAMESPACE, CALIBRATION_NS):
            kube.create_namespace(ns)
        api = await kube.api_client()
        try:
            workloads = await cluster.stage_oom_killed(api, NAMESPACE, count=count, prefix="app")
            calibration = await cluster.stage_oom_killed(api, CALIBRATION_NS, count=5, prefix="cal")
            config = cluster.service_config(workdir, kube, qps=QPS, burst=BURST)
            port = common.free_port()
            proc = common.start(
                common.service_command(config, port=port),
                name="service",
                env=common.service_env(),
                log_dir=workdir,
            )
            try:
                common.wait_ready(proc, f"http://127.0.0.1:{port}/readyz", timeout=60)
                url = f"http://127.0.0.1:{port}/webhook"
                connector = aiohttp.TCPConnector(limit=20)
                async with aiohttp.ClientSession(connector=connector) as http:
                    per_alert = await _calibrate(api, http, url=url, port=port, workloads=calibration)
                    # Calibration rollouts are verified in the background: let them finish first.
                    await asyncio.sleep(5.0)
                    alerts = _storm_alerts(workloads)
                    webhooks = [alerts[i : i + PER_WEBHOOK] for i in range(0, len(alerts), PER_WEBHOOK)]
                    async with cluster.Watcher(api, NAMESPACE).running() as watcher:
                        before = cluster.kube_requests(port)
                        t0 = time.perf_counter()
                        answers = await asyncio.gather(*(cluster.post(http, url, w) for w in webhooks))
                        acked = time.perf_counter() - t0
                        deadline = t0 + 900
                        drained = None
                        while time.perf_counter() < deadline:
                            depth = cluster.queue_depth(port)
                            if len(watcher.first_entry) >= count and depth == 0:
                                drained = time.perf_counter() - t0
                                break
                            await asyncio.sleep(0.1)
                        after = cluster.kube_requests(port)
                        last_write = max(watcher.first_entry.values(), default=t0) - t0
                        mitigated = len(watcher.first_entry)
                    await asyncio.sleep(1.0)
                ledgers = await cluster.final_ledgers(api, NAMESPACE)
            finally:
                proc.stop()
                log_tail = proc.tail(30)
        finally:
            await api.close()
    statuses: dict[str, int] = {}
    for status, _ in answers:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    by_label = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    raise_entries = sum(
        1 for entries in ledgers.values() for e in entries if e.get("action") == "raise_memory"
    )
    return {
        "workloads": count,
        "alerts": len(alerts),
        "webhooks": len(webhooks),
        "webhook_statuses": statuses,
        "acked_s": acked,
        "drain_s": drained,
        "last_write_s": last_write,
        "mitigated": mitigated,
        "requests": sum(by_label.values()),
        "requests_by_label": {k: v for k, v in by_label.items() if v},
        "calibration_requests_per_alert": per_alert,
        "raise_memory_entries": raise_entries,
        "duplicates": cluster.duplicates(ledgers),
        "service_log_tail": log_tail if drained is None else "",
    }


def run(*, quick: bool) -> dict[str, Any]:
    count = 20 if quick else 200
    workdir = Path(tempfile.mkdtemp(prefix="oom-bench-storm-"))
    raw = asyncio.run(_run(count=count, workdir=workdir))
    per_alert = statistics.median(raw["calibration_requests_per_alert"])
    needed = per_alert * count
    ideal = max(0.0, needed - BURST) / QPS
    drain = raw["drain_s"]
    ratio = drain / ideal if drain is not None and ideal > 0 else None
    dups = raw["duplicates"]
    dup_total = dups["extra_entries_per_occurrence"] + dups["workloads_with_more_than_one_write"]
    rows = [
        {
            "name": "alerts / workloads / webhooks",
            "value": f"{raw['alerts']:,} / {count} / {raw['webhooks']}",
        },
        {"name": "webhook answers", "value": str(raw["webhook_statuses"])},
        {"name": "all webhooks answered after (s)", "value": round(raw["acked_s"], 2)},
        {"name": "workloads mitigated", "value": f"{raw['mitigated']} of {count}"},
        {"name": "last mitigation seen after (s)", "value": round(raw["last_write_s"], 1)},
        {
            "name": "time to drain (s)",
            "value": round(drain, 1) if drain is not None else "did not drain in 900 s",
        },
        {"name": "API requests issued (first send → drained)", "value": int(raw["requests"])},
        {"name": "requests per isolated alert up to its write (calibration median)", "value": per_alert},
        {"name": "requests needed (that × workloads)", "value": int(needed)},
        {"name": f"ideal: (needed − burst {BURST}) ÷ Q {QPS:.0f} (s)", "value": round(ideal, 1)},
        {"name": "time to drain ÷ ideal", "value": f"**{ratio:.2f}**" if ratio is not None else "–"},
        {"name": "issued ÷ needed", "value": round(raw["requests"] / needed, 2) if needed else "–"},
        {"name": "raise_memory ledger entries (want = workloads)", "value": raw["raise_memory_entries"]},
        {"name": "duplicate mitigations", "value": f"**{dup_total}** ({dups})"},
    ]
    return {
        "settings": {
            "alerts": raw["alerts"],
            "workloads": count,
            "qps": QPS,
            "burst": BURST,
            "how": f"{PER_WORKLOAD} alerts per workload (the occurrence ×3 as HA peers and a repeat would send it, "
            f"and two re-fired occurrences of the same kill), shuffled into webhooks of {PER_WEBHOOK}, all "
            "posted at once over 20 connections.",
        },
        "rows": rows,
        "notes": [f"Requests by verb and code during the storm: {raw['requests_by_label']}"],
        "raw": raw,
        "targets": [
            {
                "name": "storm drain time ÷ ideal",
                "target": "<= 1.2",
                "measured": ratio,
                "ok": ratio is not None and ratio <= 1.2,
            },
            {
                "name": "storm duplicate mitigations",
                "target": "0",
                "measured": dup_total,
                "ok": dup_total == 0,
            },
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.storm", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="20 workloads (100 alerts) instead of 200 (1,000)"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        data = run(quick=args.quick)
    except Exception as e:
        common.write_result(
            NAME,
            {"error": f"{type(e).__name__}: {e}"[:2000], "targets": []},
            quick=args.quick,
            started=started,
        )
        raise
    path = common.write_result(NAME, data, quick=args.quick, started=started)
    print(f"wrote {path}")
    for row in data["rows"]:
        print(f"{row['name']}: {row['value']}")
    for note in data["notes"]:
        print(note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
