"""`oom-responder check-config`, run as the installed command.

Covers: the example config passes (exit 0, `ok: FILE`); broken configs exit 2 with one line per problem naming
its key path; YAML syntax errors and missing files exit 2 with a clear message.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[3] / "config" / "responder.yaml"


def _check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["oom-responder", "check-config", str(path)], capture_output=True, text=True, timeout=60, check=False
    )


def test_the_example_config_is_valid() -> None:
    result = _check(EXAMPLE)
    assert (result.returncode, result.stdout.strip()) == (0, f"ok: {EXAMPLE}")


def test_a_broken_config_exits_2_with_one_line_per_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "playbooks:\n"
        "- name: first\n  alerts: [oom_killed]\n  actions: [evict_pod]\n"
        "- name: second\n  alerts: [memory_high]\n  actions:\n  - raise_memory: {ratio: 1}\n"
        "queue: {max_pending: -1}\n"
        "notifiers: {slack: {enabeld: true}}\n"
    )
    result = _check(path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{path}: queue.max_pending: Input should be greater than 0",
        f"{path}: playbooks[1].actions[0].raise_memory.ratio: must be > 1",
        f"{path}: notifiers.slack.enabeld: Extra inputs are not permitted",
    ]


def test_a_yaml_syntax_error_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "syntax.yaml"
    path.write_text("server:\n  port: 8080\n bad: [\n")
    result = _check(path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"{path}: not valid YAML (line 3, column 2)")


def test_a_missing_file_exits_2(tmp_path: Path) -> None:
    result = _check(tmp_path / "missing.yaml")
    assert (result.returncode, result.stderr.strip()) == (2, f"{tmp_path / 'missing.yaml'}: no such file")
