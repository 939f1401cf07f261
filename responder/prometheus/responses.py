"""Prometheus `query_range` answers turned into a `WorkloadHistory`: parsing and assembling, no I/O.

The answers are untrusted: every field is checked, and what is wrong is named by its path
(`data.result[2].values[5]`), so `oom-responder analyze --input FILE` can say exactly what a bad file holds
and the reader can report it as the reason for `insufficient_data`.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

from responder.models import analyses

__all__ = ["BadResponse", "Matrix", "assemble", "parse_matrix", "parse_vector"]


class BadResponse(ValueError):
    """The answer is not a usable query_range result; the message names the field."""


@dataclasses.dataclass(frozen=True)
class Matrix:
    """One series of a range result."""

    labels: Mapping[str, str]
    timestamps: list[float]
    values: list[float]


def parse_matrix(document: Any, *, max_series: int | None = None) -> list[Matrix]:
    """The series of a `/api/v1/query_range` JSON answer (`{"status": "success", "data": {"resultType": "matrix", …}}`)."""
    if not isinstance(document, dict):
        raise BadResponse("not a JSON object (expected a Prometheus query_range answer)")
    status = document.get("status")
    if status != "success":
        error = document.get("error") or document.get("errorType") or "no error given"
        raise BadResponse(f"status is {status!r}, not 'success': {str(error)[:300]}")
    data = document.get("data")
    if not isinstance(data, dict):
        raise BadResponse("data: missing or not an object")
    if data.get("resultType") != "matrix":
        raise BadResponse(f"data.resultType is {data.get('resultType')!r}, not 'matrix' (use query_range)")
    result = data.get("result")
    if not isinstance(result, list):
        raise BadResponse("data.result: missing or not a list")
    if max_series is not None and len(result) > max_series:
        raise BadResponse(f"data.result: {len(result)} series, more than the {max_series} allowed")
    out = []
    for i, item in enumerate(result):
        where = f"data.result[{i}]"
        if not isinstance(item, dict):
            raise BadResponse(f"{where}: not an object")
        metric = item.get("metric", {})
        if not isinstance(metric, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metric.items()
        ):
            raise BadResponse(f"{where}.metric: not an object of string labels")
        values = item.get("values")
        if not isinstance(values, list):
            raise BadResponse(f"{where}.values: missing or not a list (is this an instant query?)")
        ts: list[float] = []
        vs: list[float] = []
        for j, pair in enumerate(values):
            if not (isinstance(pair, list) and len(pair) == 2):
                raise BadResponse(f'{where}.values[{j}]: not a [timestamp, "value"] pair')
            stamp, value = pair
            if not isinstance(stamp, int | float) or isinstance(stamp, bool) or not math.isfinite(stamp):
                raise BadResponse(f"{where}.values[{j}][0]: timestamp is not a number")
            if not isinstance(value, str):
                raise BadResponse(f"{where}.values[{j}][1]: value is not a string")
            try:
                number = float(value)
            except ValueError:
                raise BadResponse(f"{where}.values[{j}][1]: {value[:40]!r} is not a number") from None
            ts.append(float(stamp))
            vs.append(number)
        out.append(Matrix(labels=dict(metric), timestamps=ts, values=vs))
    return out


def parse_vector(document: Any, *, max_series: int | None = None) -> list[Matrix]:
    """The samples of a `/api/v1/query` (instant) answer, each as a one-sample series."""
    if not isinstance(document, dict):
        raise BadResponse("not a JSON object (expected a Prometheus query answer)")
    if document.get("status") != "success":
        error = document.get("error") or document.get("errorType") or "no error given"
        raise BadResponse(f"status is {document.get('status')!r}, not 'success': {str(error)[:300]}")
    data = document.get("data")
    if not isinstance(data, dict) or data.get("resultType") != "vector":
        raise BadResponse("data.resultType is not 'vector'")
    result = data.get("result")
    if not isinstance(result, list):
        raise BadResponse("data.result: missing or not a list")
    if max_series is not None and len(result) > max_series:
        raise BadResponse(f"data.result: {len(result)} series, more than the {max_series} allowed")
    as_matrix = []
    for i, item in enumerate(result):
        if not isinstance(item, dict) or not isinstance(item.get("value"), list):
            raise BadResponse(f'data.result[{i}].value: missing or not a [timestamp, "value"] pair')
        as_matrix.append({"metric": item.get("metric", {}), "values": [item["value"]]})
    return parse_matrix(
        {"status": "success", "data": {"resultType": "matrix", "result": as_matrix}}, max_series=max_series
    )


def _key(labels: Mapping[str, str]) -> tuple[str, str]:
    return labels.get("pod", ""), labels.get("container", "")


def _restart_times(series: Matrix) -> list[float]:
    # A counter that goes up: the container restarted between the two samples. One that goes down was reset
    # (kube-state-metrics restarted, or a pod of the same name was recreated): not a restart of this container.
    samples = zip(series.timestamps, series.values, strict=True)
    return [
        t1
        for (_, v0), (t1, v1) in itertools.pairwise(samples)
        if math.isfinite(v0) and math.isfinite(v1) and v1 > v0
    ]


def _last_finite(series: Matrix) -> tuple[float, float] | None:
    for t, v in zip(reversed(series.timestamps), reversed(series.values), strict=True):
        if math.isfinite(v) and v > 0:
            return t, v
    return None


def assemble(
    *,
    working_set: Sequence[Matrix],
    limits: Sequence[Matrix] = (),
    restarts: Sequence[Matrix] = (),
    rss: Sequence[Matrix] = (),
    step_seconds: float,
    limit_bytes: int | None = None,
    notes: Sequence[str] = (),
) -> analyses.WorkloadHistory:
    """One `ContainerSeries` per (pod, container) of the working set, with its limit and restarts.

    The workload's limit is `limit_bytes` when given (what the cluster says now), else the most recently
    seen limit of any of its containers.
    """
    limit_by_key: dict[tuple[str, str], tuple[float, float]] = {}
    for m in limits:
        last = _last_finite(m)
        if last is not None:
            limit_by_key[_key(m.labels)] = last
    restarts_by_key = {_key(m.labels): _restart_times(m) for m in restarts}
    rss_last = {_key(m.labels): _last_finite(m) for m in rss}
    series = []
    ws_last: dict[tuple[str, str], tuple[float, float] | None] = {}
    for m in working_set:
        key = _key(m.labels)
        lim = limit_by_key.get(key)
        ws_last[key] = _last_finite(m)
        series.append(
            analyses.ContainerSeries(
                pod=key[0] or "?",
                container=key[1] or "?",
                timestamps=m.timestamps,
                values=m.values,
                restarts=restarts_by_key.get(key, []),
                limit_bytes=int(lim[1]) if lim else None,
            )
        )
    if limit_bytes is None and limit_by_key:
        limit_bytes = int(max(limit_by_key.values())[1])
    shares = []
    for key, last in ws_last.items():
        r = rss_last.get(key)
        if last is not None and r is not None and last[1] > 0:
            shares.append(r[1] / last[1])
    return analyses.WorkloadHistory(
        series=series,
        step_seconds=step_seconds,
        limit_bytes=limit_bytes,
        rss_share=max(shares) if shares else None,
        notes=tuple(notes),
    )
