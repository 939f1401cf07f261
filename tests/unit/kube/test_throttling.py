"""The client-side API rate limiter, `responder.kube.throttling.Throttle` (on an injected clock, never sleeping).

Aspects covered:
* a full bucket lets `burst` requests through at once, then paces them at `qps`;
* the bucket refills over time and never beyond `burst`;
* waiting callers are served in arrival order, and a cancelled waiter gives its token back;
* a request in the background waits until no other request waits (and goes at once when none does);
* bad parameters fail loudly;
* property: in any interval of length d, no more than burst + qps × d requests go out.
"""

from __future__ import annotations

import asyncio
import itertools

import hypothesis
import pytest
from hypothesis import strategies as st

from responder.kube import throttling


class FakeTime:
    """A clock that only moves when someone sleeps on it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def make(qps: float, burst: int) -> tuple[throttling.Throttle, FakeTime]:
    fake = FakeTime()
    return throttling.Throttle(qps=qps, burst=burst, clock=fake.clock, sleep=fake.sleep), fake


async def test_a_full_bucket_lets_a_burst_through_without_waiting() -> None:
    throttle, fake = make(qps=2, burst=5)
    for _ in range(5):
        await throttle.acquire()
    assert fake.sleeps == []


async def test_after_the_burst_requests_are_paced_at_qps() -> None:
    throttle, fake = make(qps=4, burst=2)
    for _ in range(6):
        await throttle.acquire()
    # Each sleep is the wait for the next token: 1/qps once the burst is spent.
    assert fake.sleeps == pytest.approx([0.25, 0.25, 0.25, 0.25])
    assert fake.now == pytest.approx(1001.0)


def test_the_bucket_refills_but_never_beyond_burst() -> None:
    throttle, fake = make(qps=1, burst=3)
    assert [throttle.reserve() for _ in range(3)] == [0, 0, 0]
    fake.now += 2
    assert [throttle.reserve() for _ in range(2)] == [0, 0]
    assert throttle.reserve() == pytest.approx(1.0)
    fake.now += 3600
    assert [throttle.reserve() for _ in range(3)] == [0, 0, 0]
    assert throttle.reserve() == pytest.approx(1.0)


def test_waiters_are_served_in_arrival_order() -> None:
    throttle, _ = make(qps=10, burst=1)
    delays = [throttle.reserve() for _ in range(5)]
    assert delays == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])


async def test_a_cancelled_waiter_gives_its_token_back() -> None:
    gate = asyncio.Event()
    fake = FakeTime()

    async def blocking_sleep(seconds: float) -> None:
        fake.sleeps.append(seconds)
        await gate.wait()

    throttle = throttling.Throttle(qps=1, burst=1, clock=fake.clock, sleep=blocking_sleep)
    await throttle.acquire()
    waiter = asyncio.create_task(throttle.acquire())
    await asyncio.sleep(0)
    assert fake.sleeps == [pytest.approx(1.0)]
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    # Without the refund the next caller would wait 2 s (behind the cancelled one).
    assert throttle.reserve() == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("qps", "burst"), [pytest.param(0, 1, id="zero-qps"), pytest.param(1, 0, id="zero-burst")]
)
def test_rejects_nonsense_parameters(qps: float, burst: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        throttling.Throttle(qps=qps, burst=burst)


@hypothesis.given(
    qps=st.floats(min_value=0.1, max_value=100),
    burst=st.integers(min_value=1, max_value=10),
    gaps=st.lists(st.floats(min_value=0, max_value=2), min_size=1, max_size=60),
)
def test_property_never_more_than_burst_plus_qps_times_the_interval(
    qps: float, burst: int, gaps: list[float]
) -> None:
    throttle, fake = make(qps=qps, burst=burst)
    sent: list[float] = []
    for gap in gaps:
        fake.now += gap
        # The request goes out when its token is due.
        sent.append(fake.now + throttle.reserve())
    sent.sort()
    for first, last in itertools.combinations(range(len(sent)), 2):
        assert last - first + 1 <= burst + qps * (sent[last] - sent[first]) + 1e-6


async def test_a_request_in_the_background_goes_after_the_others_waiting() -> None:
    # Real time, 20 ms a token: the background request asked first, yet the two others went before it.
    throttle = throttling.Throttle(qps=50, burst=1)
    await throttle.acquire()  # the bucket is empty now
    order: list[str] = []

    async def request(name: str, *, background: bool) -> None:
        if background:
            with throttling.in_background():
                await throttle.acquire()
        else:
            await throttle.acquire()
        order.append(name)

    event = asyncio.create_task(request("event", background=True))
    await asyncio.sleep(0)
    await asyncio.gather(request("pod", background=False), request("patch", background=False), event)

    assert order == ["pod", "patch", "event"]


async def test_a_request_in_the_background_goes_at_once_when_nothing_waits() -> None:
    throttle, fake = make(qps=10, burst=2)
    with throttling.in_background():
        await throttle.acquire()
    assert fake.sleeps == []
