"""Run the benchmarks and regenerate the report: `python -m bench.run [--quick] [--only NAME,...]`.

Each benchmark runs in its own process with a time limit, so one that fails (say, no control plane on this
machine) is reported as such while the others still produce figures. Full runs write bench/results/ and
bench/REPORT.md; quick runs (smoke tests) write bench/results/quick/ only.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from bench import common, report

# name → time limit of a full run, in seconds (quick runs get a fifth, at least 5 minutes).
BENCHMARKS: dict[str, float] = {
    "startup": 300,
    "ingest": 1200,
    "memory": 1800,
    "reaction": 1200,
    "storm": 1500,
    "cache": 900,
    "accuracy": 600,
    "analysis": 2400,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke test, not figures")
    parser.add_argument("--only", default="", help=f"comma-separated subset of {','.join(BENCHMARKS)}")
    parser.add_argument("--no-report", action="store_true", help="do not regenerate the report")
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    failed: list[str] = []
    for name in names:
        limit = max(300.0, BENCHMARKS[name] / 5) if args.quick else BENCHMARKS[name]
        cmd = [sys.executable, "-m", f"bench.{name}"] + (["--quick"] if args.quick else [])
        print(f"== {name} ({'quick' if args.quick else 'full'}, limit {limit:.0f} s)", flush=True)
        t0 = time.perf_counter()
        try:
            code = subprocess.run(cmd, cwd=common.REPO, timeout=limit, check=False).returncode
        except subprocess.TimeoutExpired:
            code = -1
            print(f"!! {name}: over its time limit", flush=True)
        print(f"== {name}: exit {code} after {time.perf_counter() - t0:.0f} s", flush=True)
        if code != 0:
            failed.append(name)
    if not args.no_report:
        path = report.write(quick=args.quick)
        print(f"report: {path}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
