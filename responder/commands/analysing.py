"""`oom-responder analyze`: name the memory pattern of a workload, from a live Prometheus or a saved answer.

    oom-responder analyze --prometheus URL --namespace NS --workload KIND/NAME [--container C]
    oom-responder analyze --input FILE [--limit 512Mi]

FILE is a saved `/api/v1/query_range` JSON answer (what `curl …/api/v1/query_range` returns; one or more
series). Prints the analysis as text or JSON (`pattern`, `time_to_oom_seconds` (null when none),
`slope_bytes_per_hour`, `recommended_limit_bytes`, `reason`, …). Exit 0 when an analysis was printed
(`insufficient_data` included: its reason says why), 2 for bad arguments or an unusable file, with the
problem named. Reads only; never writes anywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from responder.models import analyses, settings

__all__ = ["add_arguments", "run"]

_KINDS = {k.lower(): k for k in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Pod")}


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--prometheus", metavar="URL", help="Prometheus base URL to read the history from")
    source.add_argument("--input", metavar="FILE", help="a saved query_range JSON answer ('-' for stdin)")
    parser.add_argument("--namespace", "-n", help="the workload's namespace (with --prometheus)")
    parser.add_argument("--workload", metavar="KIND/NAME", help="e.g. deployment/api (with --prometheus)")
    parser.add_argument("--container", "-c", help="only this container (default: all of the workload's)")
    parser.add_argument("--limit", help="memory limit to measure against, e.g. 512Mi (default: as read)")
    parser.add_argument(
        "--config", help="config file whose `prometheus:` settings (auth, TLS, lookback) apply"
    )
    parser.add_argument("--output", "-o", choices=("text", "json"), default="text")


def _fail(message: str) -> int:
    print(f"oom-responder analyze: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    from responder import config as config_mod  # noqa: PLC0415 - commands import what they need when they run
    from responder.logic import analysing  # noqa: PLC0415
    from responder.models import quantities, settings  # noqa: PLC0415

    limit: int | None = None
    if args.limit is not None:
        try:
            limit = quantities.parse_bytes(args.limit)
        except ValueError as e:
            return _fail(f"--limit: {e}")
    if args.input is not None:
        if args.namespace or args.workload:
            return _fail("--namespace and --workload go with --prometheus, not --input")
        try:
            history = _read_file(args.input, limit=limit)
        except _BadInput as e:
            return _fail(str(e))
        result = analysing.analyse(history)
    else:
        if not args.namespace or not args.workload or "/" not in args.workload:
            return _fail("--prometheus needs --namespace NS and --workload KIND/NAME")
        kind_text, _, name = args.workload.partition("/")
        kind = _KINDS.get(kind_text.lower())
        if kind is None:
            return _fail(f"--workload: kind {kind_text!r} is not one of {', '.join(_KINDS.values())}")
        try:
            loaded = config_mod.load_for_command(args.config)
        except config_mod.ConfigError as e:
            return _fail("; ".join(e.problems))
        base = loaded.prometheus if loaded is not None else settings.PrometheusSettings()
        try:
            prom = settings.PrometheusSettings.model_validate({**base.model_dump(), "url": args.prometheus})
        except ValueError as e:
            return _fail(f"--prometheus: {e}")
        try:
            authorization = config_mod.prometheus_authorization(prom)
        except config_mod.SecretError as e:
            return _fail(str(e))
        result = asyncio.run(
            _investigate(
                prom,
                authorization=authorization,
                namespace=args.namespace,
                kind=kind,
                name=name,
                container=args.container,
                limit=limit,
            )
        )
    if args.output == "json":
        print(json.dumps(analysing.to_document(result), indent=2))
    else:
        print(analysing.to_text(result))
    return 0


async def _investigate(
    prom: settings.PrometheusSettings,
    *,
    authorization: str | None,
    namespace: str,
    kind: str,
    name: str,
    container: str | None,
    limit: int | None,
) -> analyses.Analysis:
    from responder.prometheus import reading  # noqa: PLC0415

    reader = reading.Reader(prom, authorization=authorization)
    try:
        return await reading.investigate(
            reader,
            namespace=namespace,
            kind=kind,
            name=name,
            container=container,
            now=time.time(),
            limit_bytes=limit,
        )
    finally:
        await reader.close()


class _BadInput(Exception):
    pass


def _read_file(path: str, *, limit: int | None) -> analyses.WorkloadHistory:
    from responder.prometheus import responses  # noqa: PLC0415

    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise _BadInput(f"{path}: cannot read: {getattr(e, 'strerror', None) or e}") from e
    try:
        document = json.loads(text)
    except json.JSONDecodeError as e:
        raise _BadInput(f"{path}: not JSON: {e.msg} at line {e.lineno} column {e.colno}") from e
    try:
        series = responses.parse_matrix(document)
    except responses.BadResponse as e:
        raise _BadInput(f"{path}: {e}") from e
    if not series:
        raise _BadInput(f"{path}: data.result is empty: the query matched no series")
    for i, s in enumerate(series):
        labels = dict(s.labels)
        labels.setdefault("pod", labels.get("pod") or f"series-{i}")
        labels.setdefault("container", "")
        series[i] = responses.Matrix(labels=labels, timestamps=s.timestamps, values=s.values)
    steps = [b - a for s in series for a, b in zip(s.timestamps, s.timestamps[1:], strict=False)]
    step = sorted(steps)[len(steps) // 2] if steps else 60.0
    return responses.assemble(working_set=series, step_seconds=step, limit_bytes=limit)
