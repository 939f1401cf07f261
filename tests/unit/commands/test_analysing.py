"""`oom-responder analyze --input FILE` (`responder/commands/analysing.py`).

Aspects covered: a saved query_range answer analysed to JSON with the documented keys and to text; the limit
given on the command line; every kind of unusable file is exit 2 with a message naming the problem; argument
combinations that make no sense are exit 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from responder import cli

MI = 2**20
START = 1_700_000_000


def _leak_answer() -> dict[str, Any]:
    values = [[START + 60 * i, str(400 * MI + 10 * MI * i / 60)] for i in range(1441)]
    return {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [{"metric": {"pod": "api-7d9f8b6c5d-x2x4q", "container": "app"}, "values": values}],
        },
    }


def _write(tmp_path: Path, document: Any) -> str:
    path = tmp_path / "answer.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return str(path)


def test_a_saved_answer_is_analysed_to_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(
        ["analyze", "--input", _write(tmp_path, _leak_answer()), "--limit", "1Gi", "--output", "json"]
    )
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["pattern"] == "linear_leak"
    assert doc["slope_bytes_per_hour"] == pytest.approx(10 * MI, rel=0.05)
    # 640 MiB at the end, 10 MiB/h, 1 GiB limit: 38.4 h.
    assert doc["time_to_oom_seconds"] == pytest.approx(38.4 * 3600, rel=0.05)
    assert doc["recommended_limit_bytes"] > 640 * MI
    assert doc["reason"].startswith("linear leak")
    assert doc["limit_bytes"] == 1024 * MI


def test_without_a_limit_there_is_no_time_to_oom(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["analyze", "--input", _write(tmp_path, _leak_answer()), "-o", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["time_to_oom_seconds"] is None


def test_text_output_is_for_humans(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["analyze", "--input", _write(tmp_path, _leak_answer()), "--limit", "1Gi"]) == 0
    out = capsys.readouterr().out
    assert "pattern: linear_leak" in out
    assert "time to OOM: 3" in out
    assert "window: " in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(
            "{not json",
            "not JSON: Expecting property name enclosed in double quotes at line 1 column 2",
            id="not-json",
        ),
        pytest.param({"status": "error", "error": "timeout"}, "status is 'error'", id="error-answer"),
        pytest.param(
            {"status": "success", "data": {"resultType": "vector", "result": []}},
            "data.resultType is 'vector', not 'matrix' (use query_range)",
            id="instant-query",
        ),
        pytest.param(
            {"status": "success", "data": {"resultType": "matrix", "result": []}},
            "data.result is empty",
            id="no-series",
        ),
        pytest.param(
            {
                "status": "success",
                "data": {"resultType": "matrix", "result": [{"metric": {}, "values": [[1, "x"]]}]},
            },
            "data.result[0].values[0][1]: 'x' is not a number",
            id="bad-value",
        ),
    ],
)
def test_a_bad_file_is_exit_2_naming_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: Any, message: str
) -> None:
    path = _write(tmp_path, content)
    assert cli.main(["analyze", "--input", path]) == 2
    err = capsys.readouterr().err
    assert f"{path}: {message}" in err


def test_a_missing_file_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["analyze", "--input", str(tmp_path / "nope.json")]) == 2
    assert "cannot read: No such file or directory" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["--input", "f.json", "--limit", "lots"], "--limit:", id="bad-limit"),
        pytest.param(
            ["--prometheus", "http://127.0.0.1:1"],
            "needs --namespace NS and --workload KIND/NAME",
            id="no-workload",
        ),
        pytest.param(
            ["--prometheus", "http://127.0.0.1:1", "-n", "a", "--workload", "cronjob/x"],
            "kind 'cronjob'",
            id="bad-kind",
        ),
        pytest.param(
            ["--prometheus", "ftp://x", "-n", "a", "--workload", "deployment/x"],
            "--prometheus:",
            id="bad-url",
        ),
        pytest.param(["--input", "f.json", "-n", "a"], "go with --prometheus", id="input-and-namespace"),
    ],
)
def test_arguments_that_make_no_sense_are_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert cli.main(["analyze", *argv]) == 2
    assert message in capsys.readouterr().err
