"""Recent reads of alerted pods (`responder.kube.pod_readings.PodReadings`), over an in-memory API.

Aspects covered:

* an alert received before a read is answered from it, without a request; one received after it reads again;
* a reading older than its maximum age is not used, whoever asks;
* a missing pod is a reading too (None), and `refresh` always asks the API server and replaces the reading;
* the number of readings kept is bounded (the oldest go first), and readings too old to answer anyone are
  dropped when the next one is taken.
"""

from __future__ import annotations

import datetime

from responder.kube import pod_readings
from tests.unit import fakeapi

T0 = datetime.datetime(2026, 3, 1, 12, tzinfo=datetime.UTC)
POD = "/api/v1/namespaces/shop/pods/web-1"


class Clocks:
    def __init__(self) -> None:
        self.wall = T0
        self.mono = 100.0

    def advance(self, seconds: float) -> None:
        self.wall += datetime.timedelta(seconds=seconds)
        self.mono += seconds

    def readings(self, **kwargs: object) -> pod_readings.PodReadings:
        return pod_readings.PodReadings(clock=lambda: self.wall, monotonic=lambda: self.mono, **kwargs)  # type: ignore[arg-type]


def _api_with_pod(restarts: int) -> fakeapi.FakeApi:
    api = fakeapi.FakeApi()
    api.put_object(
        POD, {"metadata": {"name": "web-1"}, "status": {"containerStatuses": [{"restartCount": restarts}]}}
    )
    return api


def _restarts(body: object) -> int:
    assert isinstance(body, dict)
    return int(body["status"]["containerStatuses"][0]["restartCount"])


async def test_alerts_received_before_a_read_share_it_and_later_ones_read_again() -> None:
    clocks = Clocks()
    api = _api_with_pod(restarts=1)
    kube = fakeapi.kube_on(api)
    readings = clocks.readings()
    received = clocks.wall
    clocks.advance(0.5)

    first = await readings.read(kube, POD, received_at=received)
    api.put_object(
        POD, {"metadata": {"name": "web-1"}, "status": {"containerStatuses": [{"restartCount": 2}]}}
    )
    clocks.advance(1)
    copy = await readings.read(kube, POD, received_at=received)
    news = await readings.read(kube, POD, received_at=clocks.wall)

    assert (_restarts(first), _restarts(copy), _restarts(news)) == (1, 1, 2)
    assert len(api.sent("GET", POD)) == 2
    assert readings.shared == 1


async def test_an_old_reading_is_not_used() -> None:
    clocks = Clocks()
    api = _api_with_pod(restarts=1)
    kube = fakeapi.kube_on(api)
    readings = clocks.readings(max_age_seconds=10)
    received = clocks.wall
    clocks.advance(0.1)
    await readings.read(kube, POD, received_at=received)

    clocks.advance(10.5)
    await readings.read(kube, POD, received_at=received)

    assert len(api.sent("GET", POD)) == 2
    assert readings.shared == 0


async def test_a_missing_pod_is_remembered_and_refresh_asks_again() -> None:
    clocks = Clocks()
    api = fakeapi.FakeApi()
    kube = fakeapi.kube_on(api)
    readings = clocks.readings()
    received = clocks.wall
    clocks.advance(0.1)

    assert await readings.read(kube, POD, received_at=received) is None
    assert await readings.read(kube, POD, received_at=received) is None
    api.put_object(
        POD, {"metadata": {"name": "web-1"}, "status": {"containerStatuses": [{"restartCount": 3}]}}
    )
    refreshed = await readings.refresh(kube, POD)
    shared = await readings.read(kube, POD, received_at=received)

    assert _restarts(refreshed) == _restarts(shared) == 3
    assert len(api.sent("GET", POD)) == 2


async def test_readings_kept_are_bounded() -> None:
    clocks = Clocks()
    api = fakeapi.FakeApi()
    kube = fakeapi.kube_on(api)
    readings = clocks.readings(size=2)
    received = clocks.wall
    clocks.advance(0.1)
    paths = [f"/api/v1/namespaces/shop/pods/web-{i}" for i in range(3)]
    for path in paths:
        await readings.read(kube, path, received_at=received)

    for path in paths:
        await readings.read(kube, path, received_at=received)

    # web-0 was forgotten when web-2 was read; asking for it again pushed web-1 out, and so on.
    assert len(api.requests) == 6


async def test_readings_too_old_to_answer_anyone_are_dropped() -> None:
    clocks = Clocks()
    api = fakeapi.FakeApi()
    kube = fakeapi.kube_on(api)
    readings = clocks.readings(max_age_seconds=10)
    for i in range(3):
        await readings.read(kube, f"/api/v1/namespaces/shop/pods/web-{i}", received_at=clocks.wall)
    assert len(readings) == 3

    clocks.advance(11)
    await readings.read(kube, "/api/v1/namespaces/shop/pods/api-0", received_at=clocks.wall)

    assert len(readings) == 1
