"""The memory-pattern classifier (`responder/logic/analysing.py`).

Aspects covered:
* each pattern on a clean, noisy series built here (not the benchmark corpus): linear, sawtooth, accelerating,
  spike, stable;
* hard negatives come out stable: warm-up plateau, daily cycle, level shift after a deploy, flat with gaps,
  healthy garbage collection;
* figures: slope per hour and per limit, time to OOM, lifetimes and their trend, right-sized limit;
* unreadable input: empty, NaN, too short, too sparse, mismatched lengths, a reader's problem;
* a workload of several pods: the pattern most samples show, the figures of the pod nearest its limit;
* the sparkline.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from responder.logic import analysing
from responder.models.analyses import ContainerSeries, LifetimeTrend, Pattern, WorkloadHistory

MI = 2**20
START = 1_700_000_000.0
LIMIT = 1024 * MI


def _grid(hours: float = 24.0) -> np.ndarray:
    return START + np.arange(0, hours * 3600 + 1, 60.0)


def _series(
    values: np.ndarray, *, t: np.ndarray | None = None, restarts: tuple[float, ...] = ()
) -> ContainerSeries:
    times = _grid() if t is None else t
    return ContainerSeries(
        pod="api-1", container="app", timestamps=times.tolist(), values=values.tolist(), restarts=restarts
    )


def _noisy(truth: np.ndarray, *, rel: float = 0.01, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return truth * (1 + rng.normal(0, rel, truth.size))


def _analyse(series: ContainerSeries, *, limit: int | None = LIMIT) -> analysing.Analysis:
    return analysing.analyse_series(series, limit_bytes=limit)


def test_linear_growth_is_a_linear_leak_with_its_time_to_oom() -> None:
    t = _grid()
    rate = 10 * MI / 3600  # 10 MiB/h from 400 MiB: 640 MiB at the end, the limit 38.4 h later
    result = _analyse(_series(_noisy(400 * MI + rate * (t - START))))
    assert result.pattern is Pattern.LINEAR_LEAK
    assert result.slope_bytes_per_hour == pytest.approx(10 * MI, rel=0.05)
    assert result.slope_percent_of_limit_per_hour == pytest.approx(100 * 10 / 1024, rel=0.05)
    assert result.time_to_oom_seconds == pytest.approx(38.4 * 3600, rel=0.1)
    assert "linear leak" in result.reason and "limit is reached in" in result.reason
    # Enough for 24 h between restarts: 400 MiB + 240 MiB, + 15 %.
    assert result.recommended_limit_bytes == pytest.approx(640 * MI * 1.15, rel=0.05)


def test_leak_killed_at_the_limit_is_split_into_lifetimes() -> None:
    t = _grid()
    age = np.mod(t - START + 3 * 3600, 8 * 3600)  # OOM-killed every 8 h
    values = _noisy(300 * MI + age * (700 * MI / (8 * 3600)))
    restarts = tuple(float(x) for x in t[1:][np.diff(age) < 0])
    result = _analyse(_series(values, restarts=restarts))
    assert result.pattern is Pattern.LINEAR_LEAK
    assert len(result.lifetimes) == 4
    assert result.lifetime_trend is LifetimeTrend.STEADY
    assert [lt.ended_by_restart for lt in result.lifetimes] == [True, True, True, False]


def test_rising_troughs_after_each_collection_are_a_sawtooth_leak() -> None:
    t = _grid()
    phase = np.mod(t - START, 1800) / 1800  # a collection every 30 min
    values = _noisy(300 * MI + 8 * MI / 3600 * (t - START) + 80 * MI * phase, rel=0.005)
    result = _analyse(_series(values))
    assert result.pattern is Pattern.SAWTOOTH_LEAK
    assert result.slope_bytes_per_hour == pytest.approx(8 * MI, rel=0.15)
    assert result.time_to_oom_seconds is not None


def test_a_leak_rate_that_keeps_growing_is_accelerating() -> None:
    t = _grid()
    hours = (t - START) / 3600
    values = _noisy(300 * MI + 0.5 * MI * hours**2)  # rate 0 → 24 MiB/h
    result = _analyse(_series(values))
    assert result.pattern is Pattern.ACCELERATING
    assert result.recommended_limit_bytes is None
    assert "no limit is enough" in (result.recommendation or "")
    assert result.time_to_oom_seconds is not None


def test_shrinking_lifetimes_make_a_leak_accelerating() -> None:
    t = _grid()
    kills = [START + h * 3600 for h in (9, 15, 19.5, 22.5)]
    values = np.empty(t.size)
    prev = START - 3 * 3600
    for i, now in enumerate(t):
        started = max([prev, *[k for k in kills if k <= now]])
        length = {prev: 12, kills[0]: 6, kills[1]: 4.5, kills[2]: 3, kills[3]: 2}[started] * 3600
        values[i] = 300 * MI + (now - started) / length * 700 * MI
    result = _analyse(_series(_noisy(values), restarts=tuple(kills)))
    assert result.pattern is Pattern.ACCELERATING
    assert result.lifetime_trend is LifetimeTrend.SHRINKING


def test_a_sudden_jump_from_a_steady_level_is_a_spike() -> None:
    t = _grid()
    values = _noisy(np.where(t > START + 15 * 3600, 700 * MI, 400 * MI))
    result = _analyse(_series(values))
    assert result.pattern is Pattern.SPIKE
    assert "spike" in result.reason
    assert result.recommended_limit_bytes is not None
    assert result.recommended_limit_bytes >= 700 * MI * 1.1


def test_a_spike_that_gets_the_container_killed_is_still_a_spike() -> None:
    t = _grid()
    kill = START + 12 * 3600
    values = np.full(t.size, 500 * MI)
    values[np.argmin(np.abs(t - kill)) - 1] = 1000 * MI
    keep = t != kill
    result = _analyse(_series(_noisy(values)[keep], t=t[keep], restarts=(kill,)))
    assert result.pattern is Pattern.SPIKE


def test_flat_noise_is_stable_with_a_vpa_style_limit() -> None:
    result = _analyse(_series(_noisy(np.full(_grid().size, 400 * MI), rel=0.02)))
    assert result.pattern is Pattern.STABLE
    assert result.time_to_oom_seconds is None
    assert result.recommended_limit_bytes is not None
    assert 400 * MI * 1.15 <= result.recommended_limit_bytes <= 400 * MI * 1.3
    assert "+ 15 %" in (result.recommendation or "")


def _warmup() -> np.ndarray:
    t = _grid()
    return 200 * MI + 500 * MI * (1 - np.exp(-(t - START) / 3600))


def _daily() -> np.ndarray:
    t = _grid()
    return 400 * MI + 150 * MI * ((1 + np.cos(2 * math.pi * (t - START - 3 * 3600) / 86400)) / 2) ** 2


def _shift() -> np.ndarray:
    t = _grid()
    return np.where(t < START + 10 * 3600, 400 * MI, 560 * MI)


@pytest.mark.parametrize(
    ("truth", "restarts"),
    [
        pytest.param(_warmup, (), id="warm-up-plateau"),
        pytest.param(_daily, (), id="daily-cycle"),
        pytest.param(_shift, (START + 10 * 3600,), id="level-shift-after-deploy"),
    ],
)
def test_hard_negatives_are_stable(truth: object, restarts: tuple[float, ...]) -> None:
    values = _noisy(truth())  # type: ignore[operator]  # the parametrized builders take no argument
    result = _analyse(_series(values, restarts=restarts))
    assert result.pattern is Pattern.STABLE, result.reason


def test_flat_series_with_scrape_gaps_is_stable() -> None:
    t = _grid()
    keep = np.ones(t.size, dtype=bool)
    for a in (100, 400, 700, 1100):
        keep[a : a + 90] = False
    result = _analyse(_series(_noisy(np.full(t.size, 300 * MI))[keep], t=t[keep]))
    assert result.pattern is Pattern.STABLE


def test_healthy_garbage_collection_is_stable() -> None:
    t = _grid()
    values = _noisy(300 * MI + 100 * MI * (np.mod(t - START, 1200) / 1200), rel=0.005)
    result = _analyse(_series(values))
    assert result.pattern is Pattern.STABLE
    assert "collected" in result.reason


@pytest.mark.parametrize(
    ("times", "values", "why"),
    [
        pytest.param([], [], "only 0 usable samples", id="empty"),
        pytest.param(_grid().tolist(), [math.nan] * _grid().size, "only 0 usable samples", id="all-nan"),
        pytest.param(_grid(1).tolist(), [1e8] * _grid(1).size, "cover 1.0 h", id="one-hour"),
        pytest.param(
            _grid()[::20].tolist(), [1e8] * _grid()[::20].size, "of the expected scrapes", id="sparse"
        ),
        pytest.param([1.0, 2.0], [1.0], "only 0 usable samples", id="mismatched-lengths"),
    ],
)
def test_unreadable_series_are_insufficient_data_with_the_reason(
    times: list[float], values: list[float], why: str
) -> None:
    series = ContainerSeries(pod="p", container="c", timestamps=times, values=values)
    result = _analyse(series)
    assert result.pattern is Pattern.INSUFFICIENT_DATA
    assert why in result.reason


def test_leak_without_a_limit_has_no_time_to_oom() -> None:
    t = _grid()
    result = _analyse(_series(_noisy(400 * MI + 10 * MI / 3600 * (t - START))), limit=None)
    assert result.pattern is Pattern.LINEAR_LEAK
    assert result.time_to_oom_seconds is None
    assert "no memory limit" in result.reason


def test_a_readers_problem_is_the_reason() -> None:
    history = WorkloadHistory(series=[], problem="Prometheus answered 503")
    result = analysing.analyse(history)
    assert result.pattern is Pattern.INSUFFICIENT_DATA
    assert result.reason == "Prometheus answered 503"


def test_a_workload_without_series_is_insufficient() -> None:
    result = analysing.analyse(WorkloadHistory(series=[]))
    assert result.pattern is Pattern.INSUFFICIENT_DATA
    assert "no memory series" in result.reason


def test_workload_pattern_is_the_one_most_samples_show() -> None:
    t = _grid()
    leak = 400 * MI + 10 * MI / 3600 * (t - START)
    pods = [
        ContainerSeries(
            pod=f"api-{i}", container="app", timestamps=t.tolist(), values=_noisy(leak, seed=i).tolist()
        )
        for i in range(2)
    ]
    young = t[-30:]
    pods.append(ContainerSeries(pod="api-new", container="app", timestamps=young.tolist(), values=[1e8] * 30))
    pods.append(
        ContainerSeries(
            pod="api-flat",
            container="app",
            timestamps=t.tolist(),
            values=_noisy(np.full(t.size, 1e8)).tolist(),
        )
    )
    result = analysing.analyse(WorkloadHistory(series=pods, limit_bytes=LIMIT))
    assert result.pattern is Pattern.LINEAR_LEAK
    assert result.pod in {"api-0", "api-1"}
    assert result.reason.startswith("2 of 4 container series")


def test_sparkline_spans_zero_to_the_limit_and_marks_gaps() -> None:
    line = analysing.render_sparkline([0.0, 512 * MI, math.nan, 1024 * MI], limit_bytes=1024 * MI)
    assert line == "▁▅·‼"
    assert analysing.render_sparkline([], limit_bytes=None) == ""


def test_analysis_carries_a_downsampled_window_for_the_sparkline() -> None:
    result = _analyse(_series(_noisy(_warmup())))
    assert len(result.sparkline) == analysing.SPARK_POINTS
    assert max(result.sparkline) == pytest.approx(result.peak_bytes, rel=0.001)


def test_summary_says_what_a_raise_buys_a_leak() -> None:
    t = _grid()
    result = _analyse(_series(_noisy(400 * MI + 10 * MI / 3600 * (t - START))))
    line = analysing.summarize(result, new_limit_bytes=1228 * MI)
    assert line.startswith("memory history: linear leak, +10.0 MiB/h")
    assert "OOM in 3" in line
    assert "raising to 1.20 GiB buys 20." in line
    assert analysing.seconds_bought(result, new_limit_bytes=1228 * MI) == pytest.approx(20.4 * 3600, rel=0.05)


def test_summary_of_a_spike_names_its_peak_and_no_raise_bought() -> None:
    t = _grid()
    result = _analyse(_series(_noisy(np.where(t > START + 15 * 3600, 700 * MI, 400 * MI))))
    line = analysing.summarize(result, new_limit_bytes=2048 * MI)
    assert line.startswith("memory history: spike, peak")
    assert "buys" not in line
    assert analysing.seconds_bought(result, new_limit_bytes=2048 * MI) is None


def test_summary_of_missing_history_carries_the_reason() -> None:
    result = analysing.analyse(WorkloadHistory(series=[], problem="Prometheus did not answer within 5 s"))
    assert analysing.summarize(result) == (
        "memory history: insufficient data (Prometheus did not answer within 5 s)"
    )
