"""Accuracy of the memory-pattern classifier on the labelled corpus: `python -m bench.accuracy`.

Prints the confusion matrix, per-class precision/recall/F1, leak detection (any of the three leak classes
against everything else), false leaks on the hard negatives, the time-to-OOM error and the time per series,
and writes `bench/results/accuracy.json` for the report. Targets (issue 12): macro-F1 ≥ 0.90, leak precision and
recall ≥ 0.90, false leak on hard negatives ≤ 5 %, median time-to-OOM error ≤ 20 %, ≤ 5 ms per 1,440-point
series. Reference: RESIN (OSDI '22) reports 85 % precision and 91 % recall in Azure production.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

from bench import common, corpus
from responder.logic import analysing
from responder.models.analyses import ContainerSeries, Pattern

CLASSES = [p.value for p in Pattern]
HOLDOUT_SEED = corpus.SEED + 1
LEAKS = {Pattern.LINEAR_LEAK.value, Pattern.SAWTOOTH_LEAK.value, Pattern.ACCELERATING.value}


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def evaluate(series: list[corpus.LabelledSeries], *, repeats: int = 3) -> dict[str, Any]:
    predictions: list[str] = []
    ttos: list[tuple[str, float, float]] = []
    timings: list[float] = []
    misses: list[str] = []
    for s in series:
        cs = ContainerSeries(
            pod=s.ident, container="app", timestamps=s.timestamps, values=s.values, restarts=s.restarts
        )
        best = float("inf")
        result = None
        for _ in range(repeats):
            # CPU time of this thread: on a shared machine, wall time measures the neighbours.
            t0 = time.thread_time()
            result = analysing.analyse_series(cs, limit_bytes=s.limit_bytes, step_seconds=corpus.STEP)
            best = min(best, time.thread_time() - t0)
        assert result is not None
        if len(s.timestamps) >= 1000:
            timings.append(best * 1000)
        predictions.append(result.pattern.value)
        if result.pattern.value != s.label:
            misses.append(f"{s.ident} ({s.kind}) → {result.pattern.value}: {result.reason}")
        if s.true_tto_seconds and result.pattern.is_leak and result.time_to_oom_seconds is not None:
            ttos.append((s.label, s.true_tto_seconds, result.time_to_oom_seconds))
    matrix = {a: dict.fromkeys(CLASSES, 0) for a in CLASSES}
    for s, p in zip(series, predictions, strict=True):
        matrix[s.label][p] += 1
    per_class = {}
    for c in CLASSES:
        tp = matrix[c][c]
        fp = sum(matrix[a][c] for a in CLASSES if a != c)
        fn = sum(matrix[c][b] for b in CLASSES if b != c)
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        per_class[c] = {"precision": prec, "recall": rec, "f1": _f1(prec, rec), "support": tp + fn}
    macro_f1 = statistics.fmean(v["f1"] for v in per_class.values() if v["support"])
    tp = sum(1 for s, p in zip(series, predictions, strict=True) if s.label in LEAKS and p in LEAKS)
    fp = sum(1 for s, p in zip(series, predictions, strict=True) if s.label not in LEAKS and p in LEAKS)
    fn = sum(1 for s, p in zip(series, predictions, strict=True) if s.label in LEAKS and p not in LEAKS)
    leak_p = tp / (tp + fp) if tp + fp else 0.0
    leak_r = tp / (tp + fn) if tp + fn else 0.0
    hard: dict[str, dict[str, int]] = {}
    for s, p in zip(series, predictions, strict=True):
        if s.kind in corpus.HARD_NEGATIVES:
            h = hard.setdefault(s.kind, {"n": 0, "leak": 0, "stable": 0})
            h["n"] += 1
            h["leak"] += p in LEAKS
            h["stable"] += p == Pattern.STABLE.value
    hard_n = sum(h["n"] for h in hard.values())
    hard_leak = sum(h["leak"] for h in hard.values())
    errors = [abs(est - true) / true for _, true, est in ttos]
    by_class_err = {
        c: statistics.median([abs(e - t) / t for lab, t, e in ttos if lab == c])
        for c in LEAKS
        if any(lab == c for lab, _, _ in ttos)
    }
    timings.sort()
    return {
        "series": len(series),
        "confusion": matrix,
        "per_class": per_class,
        "macro_f1": macro_f1,
        "leak_precision": leak_p,
        "leak_recall": leak_r,
        "hard_negatives": hard,
        "hard_false_leak_rate": hard_leak / hard_n if hard_n else 0.0,
        "tto_median_error": statistics.median(errors) if errors else None,
        "tto_p90_error": sorted(errors)[int(0.9 * (len(errors) - 1))] if errors else None,
        "tto_count": len(errors),
        "tto_median_error_by_class": by_class_err,
        "ms_per_series_median": statistics.median(timings),
        "ms_per_series_p99": timings[int(0.99 * (len(timings) - 1))],
        "misclassified": misses,
    }


def targets(r: dict[str, Any]) -> list[dict[str, Any]]:
    def t(name: str, target: str, measured: float, ok: bool) -> dict[str, Any]:
        return {"name": name, "target": target, "measured": float(measured), "ok": bool(ok)}

    return [
        t("classifier macro-F1 (6 classes)", ">= 0.90", r["macro_f1"], r["macro_f1"] >= 0.90),
        t("leak precision (RESIN: 0.85)", ">= 0.90", r["leak_precision"], r["leak_precision"] >= 0.90),
        t("leak recall (RESIN: 0.91)", ">= 0.90", r["leak_recall"], r["leak_recall"] >= 0.90),
        t(
            "false leak on hard negatives",
            "<= 0.05",
            r["hard_false_leak_rate"],
            r["hard_false_leak_rate"] <= 0.05,
        ),
        t(
            "median time-to-OOM error",
            "<= 0.20",
            r["tto_median_error"] if r["tto_median_error"] is not None else 1.0,
            r["tto_median_error"] is not None and r["tto_median_error"] <= 0.20,
        ),
        t(
            "ms per 1,440-point series (p99)",
            "<= 5",
            r["ms_per_series_p99"],
            r["ms_per_series_p99"] <= 5.0,
        ),
    ]


def print_matrix(r: dict[str, Any]) -> None:
    short = {c: c.replace("_leak", "").replace("insufficient_data", "insuff")[:8] for c in CLASSES}
    print("true \\ predicted".ljust(20) + "".join(short[c].rjust(10) for c in CLASSES))
    for a in CLASSES:
        print(a.ljust(20) + "".join(str(r["confusion"][a][b]).rjust(10) for b in CLASSES))
    print()
    for c, v in r["per_class"].items():
        print(f"{c:20} P {v['precision']:.3f}  R {v['recall']:.3f}  F1 {v['f1']:.3f}  n {v['support']}")
    print()
    for kind, h in r["hard_negatives"].items():
        print(f"hard negative {kind:16} n {h['n']:3}  called a leak {h['leak']:3}  stable {h['stable']:3}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.accuracy", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="write bench/results/quick/ (same corpus)")
    parser.add_argument("--misses", action="store_true", help="list every misclassified series")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    series = corpus.generate()
    result = evaluate(series)
    # A second corpus from another seed, never looked at while the classifier was developed on the first:
    # if the figures hold there too, the classifier fits the patterns, not the particular series.
    holdout = evaluate(corpus.generate(HOLDOUT_SEED), repeats=1)
    print_matrix(result)
    print()
    for t in targets(result):
        print(f"{t['name']:40} {t['target']:>8}  {t['measured']:.3f}  {'met' if t['ok'] else 'MISSED'}")
    print(
        f"\nheld-out seed {HOLDOUT_SEED}: macro-F1 {holdout['macro_f1']:.3f}, leak precision "
        f"{holdout['leak_precision']:.3f}, recall {holdout['leak_recall']:.3f}, false leak on hard negatives "
        f"{holdout['hard_false_leak_rate']:.3f}, median time-to-OOM error {holdout['tto_median_error']:.3f}"
    )
    if args.misses:
        print()
        print("\n".join(result["misclassified"]))
    doc = {
        "name": "accuracy",
        "settings": {"seed": corpus.SEED, "counts": corpus.COUNTS, "step_seconds": corpus.STEP},
        "targets": targets(result),
        "result": result,
        "holdout": {k: v for k, v in holdout.items() if k != "misclassified"} | {"seed": HOLDOUT_SEED},
    }
    common.write_result("accuracy", doc, quick=args.quick, started=started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
