"""pytest fixtures for a real, backfilled Prometheus (test support; registered from tests/conftest.py).

Fixtures:

* ``promstack`` (session): one Prometheus over a TSDB holding every workload of
  :mod:`tests.promstack.scenarios` (a day of history ending when the session started). Yields a
  :class:`Backfilled` with ``url``, ``end`` (Unix seconds: query windows end here) and ``scenarios``.
* ``start_prometheus`` (function): ``(series) -> PromStack`` backfills your own
  :class:`~tests.promstack.stack.Series` into a fresh TSDB and starts another Prometheus over it; stopped
  after the test.

Tests using them are skipped with the reason when the Debian binaries are missing.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

from tests.promstack import scenarios as scenarios_mod
from tests.promstack import stack as stack_mod

__all__ = ["Backfilled", "promstack", "start_prometheus"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "prometheus: needs the real Prometheus and promtool binaries")


@dataclasses.dataclass(frozen=True)
class Backfilled:
    url: str
    end: float
    """The end of every scenario's window (Unix seconds): pass it as the reader's `now`."""
    scenarios: dict[str, scenarios_mod.Scenario]
    stack: stack_mod.PromStack


@pytest.fixture(scope="session")
def promstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backfilled]:
    why = stack_mod.missing_binaries()
    if why:
        pytest.skip(why)
    # A whole minute, a little in the past: the newest samples are within Prometheus's lookback delta.
    end = float(int(time.time() // 60 * 60) - 60)
    built = scenarios_mod.build(end)
    directory = tmp_path_factory.mktemp("promstack")
    with stack_mod.running((s for sc in built.values() for s in sc.series), directory) as stack:
        yield Backfilled(url=stack.url, end=end, scenarios=built, stack=stack)


@pytest.fixture
def start_prometheus(tmp_path: Path) -> Iterator[Callable[[Iterable[stack_mod.Series]], stack_mod.PromStack]]:
    why = stack_mod.missing_binaries()
    if why:
        pytest.skip(why)
    started: list[stack_mod.PromStack] = []

    def start(series: Iterable[stack_mod.Series]) -> stack_mod.PromStack:
        directory = tmp_path / f"prometheus-{len(started)}"
        directory.mkdir()
        storage = directory / "tsdb"
        stack_mod.backfill(series, storage)
        started.append(stack_mod.start(storage))
        return started[-1]

    yield start
    for s in started:
        s.stop()
