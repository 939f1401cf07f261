"""Regenerate bench/REPORT.md (and its PNG plots) from bench/results/*.json: `python -m bench.report`.

It only reads result files; it measures nothing. A benchmark without a result file is listed as not run.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import common

_IMG_PREFIX = "results/"
"""Where the report finds the plots, relative to itself."""

ORDER = ("ingest", "reaction", "storm", "cache", "memory", "startup", "accuracy", "analysis")
TITLES = {
    "ingest": "Ingest throughput and acknowledgement latency",
    "reaction": "Reaction time (webhook → mitigation accepted by the API server)",
    "storm": "Alert storm under a client-side API rate limit",
    "cache": "Watch-fed cache: memory per 1,000 cached workloads",
    "memory": "Memory: RSS at idle and over 1,000,000 alerts",
    "startup": "Start-up: process start → /readyz 200",
    "accuracy": "Memory-pattern classifier: accuracy on a labelled corpus",
    "analysis": "Reaction time with the memory analysis (loopback Prometheus) against without",
}


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    return str(value)


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(_fmt(c) if not isinstance(c, str) else c for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _plt() -> Any:
    try:
        import matplotlib  # noqa: PLC0415

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        return None
    return plt


def _ingest(data: dict[str, Any], out: Path) -> list[str]:
    rows = data["rows"]
    s = data["settings"]
    if "fair_webhooks_per_s" not in rows[0]:
        return ["Result file from before the fair baseline; re-run `python -m bench.ingest`."]
    marginal = data["marginal_cpu_us_per_alert"]
    md = [
        f"Closed loop: {s['closed_loop_source']}, {s['connections']} connections, {s['duration_s']:.0f} s after "
        f"{s['warmup_s']:.0f} s warm-up, median of {s['repeats']} runs in rotating order; every server started "
        "fresh; every load (warm-up included) sends occurrences never sent before. Servers: **bare** = aiohttp "
        "+ `json.loads` + 202 (validates nothing); **fair** = token check, `model_validate_json` of the v4 "
        "payload, each alert on a bounded queue (`bench/fair_baseline_app.py`); **service** = `oom-responder "
        "serve`, dry-run, no cluster (plans from labels), INFO logs as shipped. CPU µs/webhook is the server "
        "process's user+system time over the run (for the service: until its queue is drained) ÷ webhooks "
        "answered 2xx: it does not depend on how much of the machine the server got.",
        "",
        _table(
            [
                "alerts/webhook",
                "bare webhooks/s",
                "fair webhooks/s",
                "service webhooks/s",
                "bare CPU µs/webhook",
                "fair CPU µs/webhook",
                "service CPU µs/webhook",
                "service ÷ fair CPU",
                "service at WARNING: CPU µs/webhook",
                "service non-2xx",
                "duplicates measured",
            ],
            [
                [
                    r["alerts_per_webhook"],
                    r["baseline_webhooks_per_s"],
                    r["fair_webhooks_per_s"],
                    r["service_webhooks_per_s"],
                    r["baseline_cpu_us_per_webhook"],
                    r["fair_cpu_us_per_webhook"],
                    r["service_cpu_us_per_webhook"],
                    f"**{r['cpu_vs_fair']:.2f}**",
                    r.get("service_warning_logs_cpu_us_per_webhook"),
                    r["service_non_2xx"],
                    r["service_duplicates_measured"],
                ]
                for r in rows
            ],
        ),
        "",
        "Marginal CPU per extra alert ((100-alert − 1-alert) ÷ 99): "
        + ", ".join(
            f"{label} {_fmt(marginal.get(key))} µs"
            for key, label in (
                ("baseline", "bare"),
                ("fair", "fair"),
                ("service", "**service**"),
                ("service_warning_logs", "service at WARNING"),
            )
        )
        + ".",
        "",
        "Acknowledgement latency at fixed rates (open loop, bench.loadgen, measured from each request's due time; "
        "the generator against the null server, at the same rate, gives the floor):",
        "",
        _table(
            [
                "alerts/webhook",
                "webhooks/s",
                "service ack p50 / p99 (ms)",
                "fair ack p50 / p99 (ms)",
                "floor p50 / p99 (ms)",
                "service non-2xx",
            ],
            [
                [
                    r["alerts_per_webhook"],
                    r["rate"],
                    f"{_fmt(r['service_ack_p50_ms'], 2)} / {_fmt(r['service_ack_p99_ms'], 2)}",
                    f"{_fmt(r['fair_ack_p50_ms'], 2)} / {_fmt(r['fair_ack_p99_ms'], 2)}",
                    f"{_fmt(r.get('null_ack_p50_ms'), 2)} / {_fmt(r.get('null_ack_p99_ms'), 2)}",
                    r["service_non_2xx"],
                ]
                for r in data["latency_rows"]
            ],
        ),
        "",
        f"Burst: {s['burst_webhooks']:,} webhooks due within one second, 64 connections, against a fresh service "
        "with the default queue (`queue.max_pending` 10,000):",
        "",
        _table(
            [
                "alerts/webhook",
                "webhooks sent",
                "statuses",
                "ack p50 / p99 / max (ms)",
                "queue drained after (s)",
            ],
            [
                [
                    b["alerts_per_webhook"],
                    b["webhooks"],
                    ", ".join(f"{k}: {v}" for k, v in b["statuses"].items())
                    + (f", errors: {b['errors']}" if b["errors"] else ""),
                    f"{_fmt(b['ack_p50_ms'], 2)} / {_fmt(b['ack_p99_ms'], 2)} / {_fmt(b['ack_max_ms'], 2)}",
                    _fmt(b.get("drain_s"), 2),
                ]
                for b in data["bursts"]
            ],
        ),
        "",
        "Load generator ceiling (against `bench/null_server.py`, which answers 202 without parsing): "
        + ", ".join(
            f"{size} alert(s): wrk {_fmt(c['wrk']['ok_rps']) if c.get('wrk') else '–'}/s, "
            f"loadgen {_fmt(c['loadgen']['ok_rps'])}/s"
            for size, c in data["generator_ceiling"].items()
        )
        + ". Where the ceiling is not well above a server's rate, that rate is a lower bound; the CPU figures "
        "are not affected.",
    ]
    plt = _plt()
    if plt is not None:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
        sizes = [str(r["alerts_per_webhook"]) for r in rows]
        x = range(len(rows))
        w = 0.27
        servers = (("baseline", "bare aiohttp"), ("fair", "fair (validating)"), ("service", "oom-responder"))
        for ax, key, label, title in (
            (axes[0], "webhooks_per_s", "webhooks/s answered 2xx", "Throughput (closed loop)"),
            (axes[1], "cpu_us_per_webhook", "server CPU µs per webhook", "Cost per webhook"),
        ):
            for i, (target, name) in enumerate(servers):
                ax.bar([j + (i - 1) * w for j in x], [r[f"{target}_{key}"] for r in rows], w, label=name)
            ax.set_xticks(list(x), sizes)
            ax.set_xlabel("alerts per webhook")
            ax.set_ylabel(label)
            ax.set_yscale("log")
            ax.set_title(title)
        axes[0].legend()
        fig.tight_layout()
        fig.savefig(out / "ingest.png", dpi=90)
        plt.close(fig)
        md += ["", f"![ingest]({_IMG_PREFIX}ingest.png)"]
    return md


def _startup(data: dict[str, Any], out: Path) -> list[str]:
    md = [
        f"{data['settings']['repeats']} starts each; /readyz polled every 5 ms. `python -c pass` and "
        "`import aiohttp` are start-to-exit times.",
        "",
        _table(
            ["what", "p50 (ms)", "min (ms)", "max (ms)", "RSS when ready (MB)"],
            [
                [r["what"], r["p50_s"] * 1000, r["min_s"] * 1000, r["max_s"] * 1000, r["rss_mb"]]
                for r in data["rows"]
            ],
        ),
    ]
    if data.get("notes"):
        md += [""] + [f"- {note}" for note in data["notes"]]
    if data.get("imports"):
        md += [
            "",
            "Slowest imports of the serve path (`python -X importtime`, cumulative):",
            "",
            _table(
                ["module", "cumulative (ms)", "self (ms)"],
                [[f"`{r['module']}`", r["cumulative_ms"], r["self_ms"]] for r in data["imports"][:10]],
            ),
        ]
    return md


def _memory(data: dict[str, Any], out: Path) -> list[str]:
    s = data["settings"]
    md = [
        f"{s['alerts']:,} alerts with distinct fingerprints, {s['alerts_per_webhook']} per webhook, through "
        f"`oom-responder serve` in dry-run without a cluster ({s.get('pipeline', '')}); RSS (VmRSS) sampled every "
        f"0.5 s, about every {s['sample_every']:,} alerts. Caches as configured: {s.get('caches', '')}. "
        f"Webhook answers: {data.get('statuses')}.",
        "",
        _table(
            ["point", "alerts processed", "RSS (MB)"],
            [[p["label"], p["alerts"], p["rss_mb"]] for p in data["points"]],
        ),
    ]
    pipe = data.get("pipeline") or {}
    if pipe.get("error"):
        md += ["", f"Through the real pipeline (control plane): not measured: {pipe['error']}"]
    elif pipe:
        md += [
            "",
            f"Through the real pipeline: the Processor in dry-run against the test control plane, "
            f"{pipe['alerts']:,} alerts for pods that do not exist (each is read, 404, the namespace's ledgers "
            f"are looked through, and it is skipped as target-not-found): {pipe['kube_requests']:,.0f} API "
            f"requests in {pipe['elapsed_s']:.0f} s. RSS idle {pipe['idle_mb']:.1f} MB, "
            f"{_fmt(pipe['rss_mb_at_low'])} MB after {pipe['low']:,} alerts, {_fmt(pipe['rss_mb_end'])} MB at the "
            f"end: growth {_fmt(pipe['growth_mb_low_to_end'], 2)} MB.",
        ]
    plt = _plt()
    if plt is not None and data.get("samples"):
        panels = 2 if pipe.get("samples") else 1
        fig, axes = plt.subplots(1, panels, figsize=(5 * panels + 1, 3.6), squeeze=False)
        ax = axes[0][0]
        xs = [p["alerts"] for p in data["samples"]]
        ax.plot(xs, [p["rss_mb"] for p in data["samples"]], label="oom-responder (no cluster)")
        if data.get("baseline_samples"):
            b = data["baseline_samples"]
            ax.plot([p["alerts"] for p in b], [p["rss_mb"] for p in b], label="bare aiohttp")
        ax.set_xlabel("alerts processed")
        ax.set_ylabel("RSS (MB)")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend()
        ax.set_title("dry-run, label-only")
        if panels == 2:
            ax = axes[0][1]
            ax.plot(
                [p["alerts"] for p in pipe["samples"]], [p["rss_mb"] for p in pipe["samples"]], color="C2"
            )
            ax.set_xlabel("alerts processed")
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
            ax.set_title("dry-run, real pipeline + API server")
        fig.tight_layout()
        fig.savefig(out / "memory.png", dpi=90)
        plt.close(fig)
        md += ["", f"![memory]({_IMG_PREFIX}memory.png)"]
    return md


def _reaction(data: dict[str, Any], out: Path) -> list[str]:
    s = data["settings"]
    md = [
        f"{s['alerts']} OOMKilled alerts, each on its own Deployment, sent {s.get('how', '')}. "
        f"{s.get('measured', '')}",
        "",
        _table(
            ["measure", "p50 (ms)", "p90 (ms)", "p99 (ms)", "max (ms)", "n"],
            [[r["name"], r["p50"], r["p90"], r["p99"], r["max"], r["n"]] for r in data["rows"]],
        ),
    ]
    md += [""] + [f"- {note}" for note in data.get("notes", [])]
    plt = _plt()
    if plt is not None and data.get("latencies_ms"):
        fig, ax = plt.subplots(figsize=(8, 3.6))
        for name, values in data["latencies_ms"].items():
            v = sorted(values)
            if v:
                ax.plot(v, [(i + 1) / len(v) for i in range(len(v))], label=name)
        ax.set_xlabel("ms")
        ax.set_ylabel("fraction of alerts")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "reaction.png", dpi=90)
        plt.close(fig)
        md += ["", f"![reaction]({_IMG_PREFIX}reaction.png)"]
    return md


def _storm(data: dict[str, Any], out: Path) -> list[str]:
    s = data["settings"]
    md = [
        f"{s['alerts']:,} alerts over {s['workloads']} workloads in one burst; client limited to "
        f"{s['qps']} requests/s (burst {s['burst']}). {s.get('how', '')}",
        "",
        _table(["measure", "value"], [[r["name"], r["value"]] for r in data["rows"]]),
    ]
    md += [""] + [f"- {note}" for note in data.get("notes", [])]
    return md


def _accuracy(data: dict[str, Any], out: Path) -> list[str]:
    r = data["result"]
    h = data.get("holdout", {})
    classes = list(r["confusion"])
    s = data["settings"]
    md = [
        f"`python -m bench.accuracy`: {r['series']} series from `bench/corpus.py` (seed {s['seed']}; 24 h at "
        f"{s['step_seconds']:.0f} s; every class, five hard negatives labelled stable, noise, scrape gaps, OOM "
        "restarts and deploys), each classified by `responder.logic.analysing.analyse_series`. The corpus "
        "is built from each pattern's own parameters (leak rate, fill time, collection period, warm-up time "
        "constant, traffic curve), not from the classifier's thresholds. Time per series is the CPU time of "
        "the best of three runs.",
        "",
        "Confusion matrix (rows: true class, columns: predicted):",
        "",
        _table(
            ["true \\ predicted", *classes], [[a, *[r["confusion"][a][b] for b in classes]] for a in classes]
        ),
        "",
        _table(
            ["class", "precision", "recall", "F1", "series"],
            [
                [c, f"{v['precision']:.3f}", f"{v['recall']:.3f}", f"{v['f1']:.3f}", v["support"]]
                for c, v in r["per_class"].items()
            ],
        ),
        "",
        _table(
            ["measure", "this classifier", "RESIN (Azure, OSDI '22)"],
            [
                ["leak precision (any leak class vs the rest)", f"{r['leak_precision']:.3f}", "0.85"],
                ["leak recall", f"{r['leak_recall']:.3f}", "0.91"],
                ["macro-F1, 6 classes", f"{r['macro_f1']:.3f}", "–"],
            ],
        ),
        "",
        "RESIN's figures come from Azure production incidents; ours from a synthetic corpus, so they say the "
        "classifier separates the patterns as modelled, not that it would score the same on a real fleet.",
        "",
        _table(
            ["hard negative (labelled stable)", "series", "called a leak", "called stable"],
            [[k, v["n"], v["leak"], v["stable"]] for k, v in r["hard_negatives"].items()],
        ),
        "",
        f"Time to OOM (leaks detected as leaks with a limit, n = {r['tto_count']}): median relative error "
        f"{r['tto_median_error']:.3f}, p90 {r['tto_p90_error']:.3f}; by class "
        + ", ".join(f"{k} {v:.3f}" for k, v in sorted(r["tto_median_error_by_class"].items()))
        + ". An accelerating leak's time assumes its rate keeps growing at the pace measured over 3-hour "
        "stretches (exponentially): still the least certain of the three.",
        "",
        f"CPU time per 1,440-point series: median {r['ms_per_series_median']:.2f} ms, p99 "
        f"{r['ms_per_series_p99']:.2f} ms.",
    ]
    if h:
        md += [
            "",
            f"Held-out corpus (seed {h['seed']}, not looked at while tuning): macro-F1 {h['macro_f1']:.3f}, "
            f"leak precision {h['leak_precision']:.3f}, recall {h['leak_recall']:.3f}, false leak on hard "
            f"negatives {h['hard_false_leak_rate']:.3f}, median time-to-OOM error {h['tto_median_error']:.3f}.",
        ]
    return md


def _rows(data: dict[str, Any], out: Path) -> list[str]:
    md = [_table(["measure", "value"], [[r["name"], r["value"]] for r in data["rows"]])]
    return md + [""] + [f"- {note}" for note in data.get("notes", [])]


def _analysis(data: dict[str, Any], out: Path) -> list[str]:
    s = data["settings"]
    md = [
        f"{s['alerts']} OOMKilled alerts per run, {s['how']}. With the analysis, each alert first costs the "
        "workload's history read from a real Prometheus on loopback (backfilled with a day at 60 s per pod) "
        "and its classification.",
        "",
        _table(
            ["run", "p50 (ms)", "p90 (ms)", "p99 (ms)", "max (ms)", "n"],
            [[r["name"], r["p50"], r["p90"], r["p99"], r["max"], r["n"]] for r in data["rows"]],
        ),
    ]
    md += [""] + [f"- {note}" for note in data.get("notes", []) if not note.startswith("Prometheus log")]
    return md


_SECTIONS: dict[str, Callable[[dict[str, Any], Path], list[str]]] = {
    "ingest": _ingest,
    "reaction": _reaction,
    "storm": _storm,
    "cache": _rows,
    "memory": _memory,
    "startup": _startup,
    "accuracy": _accuracy,
    "analysis": _analysis,
}


def write(*, quick: bool = False) -> Path:
    global _IMG_PREFIX  # noqa: PLW0603 - one report at a time
    _IMG_PREFIX = "" if quick else "results/"
    results = common.results_dir(quick)
    docs: dict[str, dict[str, Any]] = {}
    for name in ORDER:
        path = results / f"{name}.json"
        if path.exists():
            docs[name] = json.loads(path.read_text())
    machine = next(iter(docs.values()))["machine"] if docs else common.machine_info()
    md = [
        "# oom-responder benchmarks",
        "",
        "Generated by `make bench` (`python -m bench.run`) from `bench/results/*.json`; do not edit by hand. "
        "See `bench/README.md` for how to reproduce.",
        "",
        f"Machine: {machine.get('cpus')} cores ({machine.get('cpu_model') or 'unknown CPU'}), shared with other "
        f"work (load average {', '.join(f'{x:.1f}' for x in machine.get('loadavg_at_start', []))} when a run "
        f"started); Python {machine.get('python')}, aiohttp {machine.get('versions', {}).get('aiohttp', '?')}; "
        f"commit `{machine.get('commit', '?')}`. Absolute figures from a shared 2-core machine are noisy: "
        "read them as ratios against the baselines measured in the same run.",
        "",
    ]
    if quick:
        md += ["**Quick (smoke) run: small counts, not figures to quote.**", ""]
    md += ["## Targets", ""]
    target_rows = []
    for name in ORDER:
        doc = docs.get(name)
        if doc is None:
            target_rows.append([TITLES[name], "–", "not run", "–"])
            continue
        if doc.get("error"):
            target_rows.append([TITLES[name], "–", f"failed: {doc['error']}", "–"])
            continue
        for t in doc.get("targets", []):
            target_rows.append(
                [t["name"], t["target"], _fmt(t["measured"], 2), "**met**" if t["ok"] else "**missed**"]
            )
    md += [_table(["measure", "target", "measured", ""], target_rows), ""]
    findings = [f for name in ORDER for f in docs.get(name, {}).get("findings", [])]
    analysis = common.BENCH_DIR / "ANALYSIS.md"
    if analysis.exists() and not quick:
        md += [analysis.read_text().strip(), ""]
    elif findings:
        md += ["## Findings", ""] + [f"- {f}" for f in findings] + [""]
    for name in ORDER:
        md += [f"## {TITLES[name]}", ""]
        doc = docs.get(name)
        if doc is None:
            md += ["Not run yet.", ""]
            continue
        if doc.get("error"):
            md += [f"Did not complete: {doc['error']}", ""]
            md += [f"- {note}" for note in doc.get("notes", [])] + [""]
            continue
        md += _SECTIONS[name](doc, results)
        md += ["", f"_Run finished {doc['finished_at']}, took {doc['duration_s']:.0f} s._", ""]
    path = (results / "REPORT.md") if quick else (common.BENCH_DIR / "REPORT.md")
    path.write_text("\n".join(md).rstrip() + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="report the quick results (bench/results/quick/)"
    )
    args = parser.parse_args(argv)
    print(write(quick=args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
