"""Prometheus answers turned into a workload history (`responder/prometheus/responses.py`).

Aspects covered: a range answer parsed (NaN and Inf kept for the classifier to drop); every kind of bad
answer named by its field path; too many series refused; series grouped per (pod, container) with their
limits and restarts; a restart counter that goes down is a reset, not a restart; the workload's limit from
the request or the latest seen; the RSS share.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from responder.prometheus import responses


def _answer(*series: dict[str, Any]) -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": "matrix", "result": list(series)}}


def _series(pod: str, values: list[tuple[float, str]], **labels: str) -> dict[str, Any]:
    return {"metric": {"pod": pod, "container": "app", **labels}, "values": [[t, v] for t, v in values]}


def test_parses_a_range_answer() -> None:
    parsed = responses.parse_matrix(_answer(_series("a", [(1.0, "10"), (61.0, "NaN"), (121.0, "+Inf")])))
    assert len(parsed) == 1
    assert parsed[0].labels["pod"] == "a"
    assert parsed[0].timestamps == [1.0, 61.0, 121.0]
    assert parsed[0].values[0] == 10.0
    assert math.isnan(parsed[0].values[1]) and math.isinf(parsed[0].values[2])


@pytest.mark.parametrize(
    ("document", "message"),
    [
        pytest.param([], "not a JSON object", id="not-an-object"),
        pytest.param({"status": "error", "error": "bad_data"}, "status is 'error'", id="error-status"),
        pytest.param({"status": "success"}, "data: missing", id="no-data"),
        pytest.param(
            {"status": "success", "data": {"resultType": "vector", "result": []}},
            "data.resultType is 'vector'",
            id="instant-query",
        ),
        pytest.param(
            {"status": "success", "data": {"resultType": "matrix"}}, "data.result: missing", id="no-result"
        ),
        pytest.param(
            _answer({"metric": {}, "value": [1, "2"]}), "data.result[0].values: missing", id="no-values"
        ),
        pytest.param(_answer({"metric": {"a": 1}, "values": []}), "data.result[0].metric", id="bad-labels"),
        pytest.param(
            _answer(_series("a", [(1.0, "x")])),
            "data.result[0].values[0][1]: 'x' is not a number",
            id="bad-value",
        ),
        pytest.param(
            _answer({"metric": {}, "values": [["now", "1"]]}),
            "values[0][0]: timestamp is not a number",
            id="bad-time",
        ),
        pytest.param(
            _answer({"metric": {}, "values": [[1, 2]]}),
            "values[0][1]: value is not a string",
            id="number-value",
        ),
        pytest.param(
            _answer({"metric": {}, "values": [[1]]}), "values[0]: not a [timestamp", id="short-pair"
        ),
    ],
)
def test_names_what_is_wrong_with_a_bad_answer(document: Any, message: str) -> None:
    with pytest.raises(responses.BadResponse, match=message.replace("[", r"\[").replace("]", r"\]")):
        responses.parse_matrix(document)


def test_refuses_more_series_than_allowed() -> None:
    with pytest.raises(responses.BadResponse, match="3 series, more than the 2 allowed"):
        responses.parse_matrix(_answer(*[_series(str(i), []) for i in range(3)]), max_series=2)


def _m(pod: str, values: list[float], *, start: float = 0.0) -> responses.Matrix:
    return responses.Matrix(
        labels={"pod": pod, "container": "app"},
        timestamps=[start + 60.0 * i for i in range(len(values))],
        values=values,
    )


def test_assembles_one_series_per_container_with_its_limit_and_restarts() -> None:
    history = responses.assemble(
        working_set=[_m("a", [1, 2, 3, 4]), _m("b", [5, 6, 7, 8])],
        limits=[_m("a", [100, 100, 200, math.nan]), _m("b", [300, 300, 300, 300])],
        restarts=[_m("a", [0, 0, 1, 1]), _m("b", [4, 4, 0, 0])],
        rss=[_m("a", [1, 1, 1, 2]), _m("b", [1, 1, 1, 4])],
        step_seconds=60,
    )
    by_pod = {s.pod: s for s in history.series}
    assert by_pod["a"].limit_bytes == 200
    assert list(by_pod["a"].restarts) == [120.0]
    assert list(by_pod["b"].restarts) == []  # 4 → 0 is a reset, not a restart
    assert history.limit_bytes == 300  # both last seen at 180 s: the larger
    assert history.rss_share == pytest.approx(0.5)


def test_the_requests_limit_wins_over_the_one_read() -> None:
    history = responses.assemble(
        working_set=[_m("a", [1, 2])], limits=[_m("a", [100, 100])], step_seconds=60, limit_bytes=512
    )
    assert history.limit_bytes == 512
    assert history.rss_share is None


def test_parses_an_instant_answer_as_one_sample_series() -> None:
    document = {
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": {"pod": "a"}, "value": [5.0, "7"]}]},
    }
    [series] = responses.parse_vector(document)
    assert (series.labels["pod"], series.timestamps, series.values) == ("a", [5.0], [7.0])
    with pytest.raises(responses.BadResponse, match="not 'vector'"):
        responses.parse_vector(_answer())
    with pytest.raises(responses.BadResponse, match=r"data.result\[0\].value"):
        responses.parse_vector({"status": "success", "data": {"resultType": "vector", "result": [{}]}})
