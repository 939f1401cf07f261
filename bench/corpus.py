"""A labelled corpus of container memory series for the pattern classifier's accuracy benchmark.

Every series is 24 h at 60 s (1,440 scrapes) unless its class is about having less. It is built from the
physics of each pattern (a leak rate and a fill time, garbage-collection periods, a warm-up time constant, a
traffic curve…), with parameters drawn from ranges an SRE sees in practice, never from the classifier's
thresholds: the classifier's module is not imported here. Noise is Gaussian per scrape plus a slow
mean-reverting wander (page cache, allocator), with scrape gaps, the odd glitch, container restarts at the
limit (OOM kills) and after deploys.

Ground truth for time to OOM comes from running the same noiseless model past the end of the window until it
reaches the limit.

`python -m bench.corpus --write DIR` saves the corpus as JSON lines for inspection.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

__all__ = ["HARD_NEGATIVES", "LabelledSeries", "generate"]

SEED = 20_261_201
STEP = 60.0
WINDOW = 86_400.0
END = 1_800_000_000.0
"""The window's end (Unix seconds): fixed so the corpus is the same on every run."""
HORIZON = 14 * 86_400.0
"""How far past the window the noiseless model is run to find the true time to OOM."""
MI = 2**20
LIMITS = (256 * MI, 512 * MI, 1024 * MI, 2048 * MI, 4096 * MI)

HARD_NEGATIVES = ("warmup_plateau", "daily_cycle", "level_shift", "gappy_flat", "healthy_gc")
"""Kinds labelled stable that look like growth at a glance."""


@dataclasses.dataclass(frozen=True)
class LabelledSeries:
    ident: str
    label: str
    """The expected pattern (a `Pattern` value)."""
    kind: str
    """Finer description: the hard negative's name, or the class again."""
    timestamps: list[float]
    values: list[float]
    restarts: list[float]
    limit_bytes: int
    true_tto_seconds: float | None


Rng = np.random.Generator


def _grid(start: float, end: float) -> np.ndarray:
    return np.arange(start, end + STEP / 2, STEP)


def _loguniform(rng: Rng, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _wander(rng: Rng, n: int, *, sigma: float, tau_points: float) -> np.ndarray:
    """Ornstein-Uhlenbeck wander with stationary deviation `sigma` (relative) and correlation time `tau`."""
    a = math.exp(-1.0 / tau_points)
    shocks = rng.normal(0.0, sigma * math.sqrt(1 - a * a), n)
    out = np.empty(n)
    x = rng.normal(0.0, sigma)
    for i in range(n):
        x = a * x + shocks[i]
        out[i] = x
    return out


def _observe(
    rng: Rng, t: np.ndarray, truth: np.ndarray, *, gaps: bool = True, noise: float | None = None
) -> tuple[list[float], list[float]]:
    """Scrape the truth: multiplicative noise, a slow wander, the odd glitch, scrape gaps."""
    n = t.size
    rel = noise if noise is not None else rng.uniform(0.002, 0.03)
    wander = _wander(rng, n, sigma=rng.uniform(0.0, 0.02), tau_points=rng.uniform(10, 120))
    y = truth * (1.0 + wander + rng.normal(0.0, rel, n))
    glitches = rng.random(n) < 0.002
    y[glitches] *= rng.uniform(0.9, 1.1, int(glitches.sum()))
    keep = np.ones(n, dtype=bool)
    if gaps and rng.random() < 0.3:
        for _ in range(int(rng.integers(1, 5))):
            a = int(rng.integers(0, n))
            keep[a : a + int(rng.integers(1, 20))] = False
    y = np.maximum(y, 0.0)
    return [float(x) for x in t[keep]], [float(x) for x in y[keep]]


def _first_crossing(t: np.ndarray, values: np.ndarray, limit: float) -> float | None:
    over = np.flatnonzero(values >= limit)
    return float(t[over[0]] - END) if over.size else None


def _run_leak(
    rng: Rng,
    *,
    limit: float,
    base: float,
    rate_at: Callable[[float], float],
    sawtooth: tuple[float, float] | None,
) -> tuple[np.ndarray, np.ndarray, list[float], float | None]:
    """Simulate a leaking container from before the window to the horizon, restarting at each OOM kill.

    `rate_at(t)` is the leak rate in bytes/s at time t; `sawtooth` = (collection period s, amplitude bytes).
    Returns the grid, the noiseless working set (NaN while a container restarts), the restart times in the
    window and the true time to OOM after the window's end.
    """
    start = END - WINDOW
    # The container running at the window's start began some time earlier, with a leak already under way.
    age = rng.uniform(0.0, 0.9) * min((limit - base) / max(rate_at(start), 1e-9), 3 * 86_400.0)
    t = _grid(start, END + HORIZON)
    out = np.empty(t.size)
    leaked = sum(rate_at(start - age + s) * STEP for s in np.arange(0, age, STEP))
    warm_tau = rng.uniform(60, 600)
    since_start = age
    tooth = 0.0
    period = sawtooth[0] * rng.uniform(0.7, 1.3) if sawtooth else 0.0
    restarts: list[float] = []
    down_until = -math.inf
    tto: float | None = None
    for i, now in enumerate(t):
        if now < down_until:
            out[i] = math.nan
            continue
        warm = 1.0 - 0.4 * math.exp(-since_start / warm_tau)
        value = base * warm + leaked
        if sawtooth:
            value += sawtooth[1] * tooth / period
        if value >= limit:
            if now > END:
                tto = now - END
                out[i:] = math.nan
                break
            # OOM kill: the container restarts after a back-off, from scratch.
            restarts.append(float(now))
            down_until = now + rng.uniform(30, 150)
            leaked, since_start, tooth = 0.0, 0.0, 0.0
            out[i] = math.nan
            continue
        out[i] = value
        leaked += rate_at(now) * STEP
        since_start += STEP
        if sawtooth:
            tooth += STEP
            if tooth >= period:
                tooth = 0.0
                period = sawtooth[0] * rng.uniform(0.7, 1.3)
    return t, out, restarts, tto


def _leak_series(rng: Rng, ident: str, label: str) -> LabelledSeries:
    limit = float(rng.choice(LIMITS))
    base = rng.uniform(0.25, 0.6) * limit
    saw: tuple[float, float] | None = None
    if label == "linear_leak":
        fill = _loguniform(rng, 4 * 3600, 96 * 3600)
        rate = (limit - base) / fill

        def rate_at(_: float) -> float:
            return rate
    elif label == "sawtooth_leak":
        base = rng.uniform(0.25, 0.5) * limit
        saw = (rng.uniform(5, 60) * 60, rng.uniform(0.08, 0.35) * base)
        fill = _loguniform(rng, 6 * 3600, 120 * 3600)
        rate = (limit - base - saw[1]) / fill

        def rate_at(_: float) -> float:
            return rate
    else:
        # The leak rate grows k-fold over the day, exponentially or linearly.
        base = rng.uniform(0.25, 0.5) * limit
        fill0 = _loguniform(rng, 12 * 3600, 96 * 3600)
        r0 = (limit - base) / fill0
        k = rng.uniform(3, 10)
        t0 = END - WINDOW
        if rng.random() < 0.5:
            g = math.log(k) / WINDOW

            def rate_at(now: float) -> float:
                return r0 * math.exp(g * (now - t0))
        else:

            def rate_at(now: float) -> float:
                return r0 * max(0.05, 1 + (k - 1) * (now - t0) / WINDOW)

    t, truth, restarts, tto = _run_leak(rng, limit=limit, base=base, rate_at=rate_at, sawtooth=saw)
    inside = t <= END
    t, truth = t[inside], truth[inside]
    if rng.random() < 0.3:
        # Traffic modulates the level a little too.
        phase = rng.uniform(0, 2 * math.pi)
        truth = truth * (1 + rng.uniform(0.0, 0.08) * np.sin(2 * math.pi * (t - t[0]) / 86_400 + phase))
    present = np.isfinite(truth)
    ts, ys = _observe(rng, t[present], truth[present])
    return LabelledSeries(ident, label, label, ts, ys, restarts, int(limit), tto)


def _flat_truth(rng: Rng, t: np.ndarray, level: float) -> np.ndarray:
    return np.full(t.size, level)


def _stable(rng: Rng, ident: str, kind: str) -> LabelledSeries:
    limit = float(rng.choice(LIMITS))
    level = rng.uniform(0.15, 0.7) * limit
    t = _grid(END - WINDOW, END)
    restarts: list[float] = []
    noise = None
    if kind == "stable":
        truth = _flat_truth(rng, t, level)
    elif kind == "warmup_plateau":
        # A JVM heap (or a cache) filling to its cap after start, then flat.
        cap = rng.uniform(0.4, 0.85) * limit
        start = END - WINDOW + (rng.uniform(0, 4 * 3600) if rng.random() < 0.5 else 0.0)
        tau = rng.uniform(10 * 60, 2 * 3600)
        floor = rng.uniform(0.2, 0.5) * cap
        since = np.maximum(t - start, 0.0)
        truth = floor + (cap - floor) * (1 - np.exp(-since / tau))
        if start > t[0]:
            restarts.append(float(start))
            truth[t < start] = cap
    elif kind == "daily_cycle":
        # Traffic-driven: a daytime bump of varying sharpness, peak at a random hour.
        amp = rng.uniform(0.1, 0.5) * level
        peak_hour = rng.uniform(0, 24)
        sharp = rng.uniform(1, 4)
        phase = 2 * math.pi * ((t / 3600.0 - peak_hour) / 24.0)
        bump = ((1 + np.cos(phase)) / 2) ** sharp
        truth = level + amp * bump
    elif kind == "level_shift":
        # A deploy replaces the container; the new version settles at another level.
        deploy = END - WINDOW + rng.uniform(3 * 3600, 21 * 3600)
        after = level * rng.choice([rng.uniform(0.6, 0.9), rng.uniform(1.1, 1.6)])
        tau = rng.uniform(2 * 60, 20 * 60)
        since = np.maximum(t - deploy, 0.0)
        truth = np.where(t < deploy, level, after * (1 - 0.5 * np.exp(-since / tau)))
        restarts.append(float(deploy))
        keep = (t < deploy) | (t > deploy + rng.uniform(30, 180))
        t, truth = t[keep], truth[keep]
    elif kind == "gappy_flat":
        truth = _flat_truth(rng, t, level)
        keep = np.ones(t.size, dtype=bool)
        target = rng.uniform(0.1, 0.4) * t.size
        while (~keep).sum() < target:
            a = int(rng.integers(0, t.size))
            keep[a : a + int(rng.integers(5, 120))] = False
        t, truth = t[keep], truth[keep]
    elif kind == "healthy_gc":
        # Collections bring memory back to the same floor every time.
        period = rng.uniform(5, 60) * 60
        amp = rng.uniform(0.08, 0.35) * level
        phase = np.mod(t - t[0] + rng.uniform(0, period), period) / period
        truth = level + amp * phase
    else:
        raise ValueError(kind)
    ts, ys = _observe(rng, t, truth, noise=noise)
    return LabelledSeries(ident, "stable", kind, ts, ys, restarts, int(limit), None)


def _spike(rng: Rng, ident: str) -> LabelledSeries:
    limit = float(rng.choice(LIMITS))
    level = rng.uniform(0.2, 0.6) * limit
    t = _grid(END - WINDOW, END)
    at = END - WINDOW + rng.uniform(2 * 3600, 23.5 * 3600)
    jump = rng.uniform(0.3, 1.2) * level
    ramp = rng.uniform(60, 240)
    rise = np.clip((t - at) / ramp, 0.0, 1.0)
    truth = level + jump * rise
    restarts: list[float] = []
    if rng.random() < 0.5:
        # The operation finishes and its memory is released.
        until = at + rng.uniform(5 * 60, 3 * 3600)
        truth = np.where(t > until, level, truth)
    over = np.flatnonzero(truth >= limit)
    keep = np.ones(t.size, dtype=bool)
    if over.size:
        # The spike hits the limit: OOM kill, restart back at the usual level.
        kill = float(t[over[0]])
        restarts.append(kill)
        truth = np.where(t >= kill, level, truth)
        keep = (t < kill) | (t > kill + rng.uniform(30, 150))
    ts, ys = _observe(rng, t[keep], truth[keep])
    return LabelledSeries(ident, "spike", "spike", ts, ys, restarts, int(limit), None)


def _insufficient(rng: Rng, ident: str) -> LabelledSeries:
    limit = float(rng.choice(LIMITS))
    level = rng.uniform(0.2, 0.7) * limit
    t = _grid(END - WINDOW, END)
    choice = rng.integers(0, 3)
    if choice == 0:
        # A pod started shortly before the alert.
        t = t[t >= END - rng.uniform(10 * 60, 100 * 60)]
    elif choice == 1:
        # Scrapes mostly failed.
        t = t[rng.random(t.size) < rng.uniform(0.02, 0.12)]
    else:
        t = t[:0]
    ts, ys = _observe(rng, t, np.full(t.size, level), gaps=False)
    return LabelledSeries(ident, "insufficient_data", "insufficient_data", ts, ys, [], int(limit), None)


COUNTS = {
    "linear_leak": 100,
    "sawtooth_leak": 80,
    "accelerating": 80,
    "spike": 70,
    "stable": 60,
    **dict.fromkeys(HARD_NEGATIVES, 45),
    "insufficient_data": 30,
}


def generate(seed: int = SEED) -> list[LabelledSeries]:
    """The corpus: the same series for the same seed."""
    rng = np.random.default_rng(seed)
    out: list[LabelledSeries] = []
    for kind, count in COUNTS.items():
        for i in range(count):
            ident = f"{kind}-{i:03d}"
            if kind in ("linear_leak", "sawtooth_leak", "accelerating"):
                out.append(_leak_series(rng, ident, kind))
            elif kind == "spike":
                out.append(_spike(rng, ident))
            elif kind == "insufficient_data":
                out.append(_insufficient(rng, ident))
            else:
                out.append(_stable(rng, ident, kind))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.corpus", description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, required=True, help="directory for corpus.jsonl")
    args = parser.parse_args(argv)
    args.write.mkdir(parents=True, exist_ok=True)
    path = args.write / "corpus.jsonl"
    with path.open("w") as f:
        for s in generate():
            f.write(json.dumps(dataclasses.asdict(s)) + "\n")
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
