"""Reaction-time benchmark: webhook sent → mitigation accepted by the real API server, over 200 OOMKilled alerts.

On the test control plane (tests/kubeplane), 200 one-replica Deployments have their pod's container marked
OOMKilled the way a kubelet reports it. `oom-responder serve` runs in enforce mode against the plane with every
guardrail wide open and the client limiter raised (qps 200) so that neither blocks nor paces the mitigations
(the storm benchmark measures the limiter). Alerts are sent one at a time, each on its own workload: the next
is sent once the previous mitigation was seen, so each figure is one alert's own latency.

"Accepted" is observed from outside the service: a watch on the Deployments sees the PATCH that carries the
raised limit and its ledger entry, on the same clock as the send time (watch delivery adds ~1 ms on
loopback). The service's own `oom_responder_action_duration_seconds` (dequeue → write) is kept as a
cross-check, and the webhook acknowledgement time is reported beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp

from bench import cluster, common, loadgen

NAME = "reaction"
NAMESPACE = "bench-reaction"


async def _run(
    *,
    count: int,
    workdir: Path,
    arms: Mapping[str, Mapping[str, Any]] | None = None,
    before_serve: Callable[[list[dict[str, str]]], Mapping[str, Mapping[str, Any]]] | None = None,
) -> dict[str, dict[str, Any]]:
    """One service per arm (config overrides by arm name; default one arm, "service"), on one control plane
    and `count` workloads each, alerts sent to the arms in turn, so that every arm meets the same load.

    `before_serve(workloads)` may return more config overrides by arm name, once all the workloads are staged
    (names known)."""
    arms = arms if arms is not None else {"service": {}}
    with cluster.plane(pods=count * len(arms)) as kube:
        kube.create_namespace(cluster.OWN_NAMESPACE)
        kube.create_namespace(NAMESPACE)
        api = await kube.api_client()
        try:
            t0 = time.perf_counter()
            workloads = await cluster.stage_oom_killed(api, NAMESPACE, count=count * len(arms), prefix="app")
            staged_s = time.perf_counter() - t0
            later = before_serve(workloads) if before_serve is not None else {}
            with contextlib.ExitStack() as services:
                urls: dict[str, str] = {}
                ports: dict[str, int] = {}
                procs: dict[str, common.Proc] = {}
                for arm, overrides in arms.items():
                    arm_dir = workdir / arm
                    arm_dir.mkdir(parents=True, exist_ok=True)
                    config = cluster.service_config(
                        arm_dir,
                        kube,
                        qps=200,
                        burst=400,
                        extra={"identity": f"bench-{arm}", **overrides, **later.get(arm, {})},
                    )
                    ports[arm] = common.free_port()
                    procs[arm] = services.enter_context(
                        common.running(
                            common.start(
                                common.service_command(config, port=ports[arm]),
                                name=arm,
                                env=common.service_env(),
                                log_dir=arm_dir,
                            )
                        )
                    )
                    common.wait_ready(procs[arm], f"http://127.0.0.1:{ports[arm]}/readyz", timeout=60)
                    urls[arm] = f"http://127.0.0.1:{ports[arm]}/webhook"
                results = {arm: {"reaction_s": [], "ack_s": [], "statuses": {}, "missed": []} for arm in arms}
                requests_before = {arm: sum(cluster.kube_requests(ports[arm]).values()) for arm in arms}
                names = list(arms)
                async with (
                    cluster.Watcher(api, NAMESPACE).running() as watcher,
                    aiohttp.ClientSession() as http,
                ):
                    for i in range(count):
                        # Alternate which arm goes first, so that neither always follows the other.
                        order = names if i % 2 == 0 else names[::-1]
                        for arm in order:
                            index = names.index(arm) * count + i
                            await _react(
                                http, watcher, urls[arm], workloads[index], index=index, into=results[arm]
                            )
                    # Let the last writes land before reading the services' counters.
                    await asyncio.sleep(1.0)
                ledgers = await cluster.final_ledgers(api, NAMESPACE)
                for arm in arms:
                    mine = {w["deployment"] for w in workloads[names.index(arm) * count :][:count]}
                    arm_ledgers = {name: entries for name, entries in ledgers.items() if name in mine}
                    results[arm].update(
                        {
                            "count": count,
                            "staged_s": staged_s,
                            "mitigated": sum(
                                1
                                for entries in arm_ledgers.values()
                                if any(e.get("action") == "raise_memory" for e in entries)
                            ),
                            "duplicates": cluster.duplicates(arm_ledgers),
                            "kube_requests": sum(cluster.kube_requests(ports[arm]).values())
                            - requests_before[arm],
                            "kube_requests_by_label": cluster.kube_requests(ports[arm]),
                            "action_duration_histogram": cluster.histogram(
                                ports[arm], "oom_responder_action_duration_seconds"
                            ),
                        }
                    )
            for arm in arms:
                results[arm]["service_log_tail"] = procs[arm].tail(30) if results[arm]["missed"] else ""
        finally:
            await api.close()
    return results


async def _react(
    http: aiohttp.ClientSession,
    watcher: cluster.Watcher,
    url: str,
    workload: dict[str, str],
    *,
    index: int,
    into: dict[str, Any],
) -> None:
    """One alert: sent, acknowledged, and its write seen by the watch (or missed after 15 s)."""
    name = workload["deployment"]
    seen = watcher.event_for(name)
    alert = cluster.oom_alert(
        workload, NAMESPACE, fingerprint=f"{0xBE000000 + index:016x}", starts_at=cluster.rfc3339()
    )
    sent = time.perf_counter()
    status, ack = await cluster.post(http, url, [alert])
    into["statuses"][str(status)] = into["statuses"].get(str(status), 0) + 1
    into["ack_s"].append(ack)
    try:
        await asyncio.wait_for(seen.wait(), 15)
    except TimeoutError:
        into["missed"].append(name)
        return
    into["reaction_s"].append(watcher.first_entry[name] - sent)
    await asyncio.sleep(0.02)


def _row(name: str, values_s: list[float]) -> dict[str, Any]:
    p = loadgen.percentiles(values_s)
    return {"name": name, "n": len(values_s), **{k: p.get(k) for k in ("p50", "p90", "p99", "max")}}


def _histogram_quantile(hist: dict[str, float], q: float) -> float | None:
    """Upper bound of the bucket holding quantile q, summed over actions (ms)."""
    buckets: dict[float, float] = {}
    for key, value in hist.items():
        if not key.startswith("bucket"):
            continue
        le = key.split('le="', 1)[1].split('"', 1)[0]
        bound = float("inf") if le == "+Inf" else float(le)
        buckets[bound] = buckets.get(bound, 0) + value
    if not buckets:
        return None
    total = buckets.get(float("inf"), max(buckets.values()))
    for bound in sorted(buckets):
        if total and buckets[bound] >= q * total:
            return bound * 1000
    return None


def run(*, quick: bool) -> dict[str, Any]:
    count = 20 if quick else 200
    workdir = Path(tempfile.mkdtemp(prefix="oom-bench-reaction-"))
    raw = asyncio.run(_run(count=count, workdir=workdir))["service"]
    reaction = _row("webhook sent → write seen by a watch", raw["reaction_s"])
    rows = [
        reaction,
        _row("webhook acknowledged (202)", raw["ack_s"]),
        {
            "name": "service histogram: dequeue → write accepted (bucket upper bound)",
            "n": None,
            "p50": _histogram_quantile(raw["action_duration_histogram"], 0.5),
            "p90": _histogram_quantile(raw["action_duration_histogram"], 0.9),
            "p99": _histogram_quantile(raw["action_duration_histogram"], 0.99),
            "max": None,
        },
    ]
    p99 = reaction.get("p99")
    notes = [
        f"{raw['mitigated']} of {count} workloads mitigated; {len(raw['missed'])} not seen within 15 s; "
        f"webhook answers {raw['statuses']}.",
        f"API requests issued while reacting: {raw['kube_requests']:.0f} "
        f"({raw['kube_requests'] / max(1, count):.1f} per alert, rollout verification polls included).",
        f"Duplicates: {raw['duplicates']}.",
        f"Staging {count} Deployments and marking their pods OOMKilled took {raw['staged_s']:.0f} s (not measured).",
    ]
    return {
        "settings": {
            "alerts": count,
            "how": "one webhook per alert, one at a time (the next once the previous write was seen)",
            "measured": "Reaction = send time → the Deployment's MODIFIED event carrying the ledger entry, both on "
            "the benchmark's clock. Service: enforce mode, qps 200 / burst 400, guardrails wide open.",
        },
        "rows": rows,
        "latencies_ms": {
            "reaction": [x * 1000 for x in raw["reaction_s"]],
            "ack": [x * 1000 for x in raw["ack_s"]],
        },
        "notes": notes,
        "raw": {k: v for k, v in raw.items() if k not in ("reaction_s", "ack_s")},
        "targets": [
            {
                "name": "reaction p99 (webhook → mitigation accepted)",
                "target": "<= 250 ms",
                "measured": p99,
                "ok": p99 is not None and p99 <= 250 and not raw["missed"],
            }
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reaction", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 alerts instead of 200")
    args = parser.parse_args(argv)
    return common.run_and_report(NAME, run, quick=args.quick)


if __name__ == "__main__":
    sys.exit(main())
