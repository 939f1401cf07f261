"""Recent reads of alerted pods, shared by the alerts about the same pod that arrived before the read.

Stage: kube edge (reads only). Alertmanager says the same thing several times: each HA peer sends it, the
repeat interval re-sends it, and an alert that resolves and fires again comes back as a new occurrence of the
same kill. In a storm those copies reach the queue together and each would read its pod again. A read taken
after an alert was received already shows everything that alert knew (the alert was built from cluster
state older than its delivery), so that alert may be answered from it instead of a new GET; an alert
received after the read may carry news (a new kill) and always reads again. Readings are kept for two
minutes at most (`MAX_AGE_SECONDS`), and a bounded number of them.

The first attempt of a run reads through here; a re-read after a 409 goes to the API server and refreshes
the reading. The cache is never the proof of anything written: every write still carries its precondition.
This module decides nothing about incidents.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import time
from collections.abc import Callable

from responder.kube import client, fetching

__all__ = ["MAX_AGE_SECONDS", "PodReadings"]

Body = client.Body

MAX_AGE_SECONDS = 120.0
"""How long a reading answers alerts received before it. What makes sharing it right is the receipt rule (such
an alert knows nothing newer than the reading); the age bounds how old what the service sees of a pod can be,
and is long enough for a storm's copies of one alert, which a shuffled queue of a thousand alerts reaches
tens of seconds apart."""
_SIZE = 4096


@dataclasses.dataclass(frozen=True, slots=True)
class _Reading:
    body: Body | None
    taken_at: datetime.datetime
    """The wall-clock time the GET was sent (compared with the alerts' receipt times)."""
    taken_monotonic: float


class PodReadings:
    """The last read of each recently alerted pod (None: it did not exist), with the time it was taken."""

    def __init__(
        self,
        *,
        clock: Callable[[], datetime.datetime],
        monotonic: Callable[[], float] = time.monotonic,
        max_age_seconds: float = MAX_AGE_SECONDS,
        size: int = _SIZE,
    ) -> None:
        self._clock = clock
        self._monotonic = monotonic
        self._max_age = max_age_seconds
        self._size = size
        self._readings: collections.OrderedDict[str, _Reading] = collections.OrderedDict()
        self.shared = 0
        """Reads answered from an earlier reading (for the tests and the benchmark's accounting)."""

    async def read(self, kube: client.Kube, path: str, *, received_at: datetime.datetime) -> Body | None:
        """The pod at `path` as the API server has it since `received_at` (an alert's receipt), or None."""
        reading = self._readings.get(path)
        if (
            reading is not None
            and reading.taken_at > received_at
            and self._monotonic() - reading.taken_monotonic <= self._max_age
        ):
            self.shared += 1
            return reading.body
        return await self.refresh(kube, path)

    async def refresh(self, kube: client.Kube, path: str) -> Body | None:
        """Read the pod from the API server (a 409 says it may have changed), and keep the reading."""
        taken_at, taken_monotonic = self._clock(), self._monotonic()
        body = await fetching.read_optional(kube, path)
        self._readings[path] = _Reading(body, taken_at, taken_monotonic)
        self._readings.move_to_end(path)
        # Oldest first: what can no longer answer anyone goes now, not when the bound is reached (a pod's
        # body is kilobytes, and a quiet service would otherwise keep thousands of them for ever).
        while self._readings:
            oldest = next(iter(self._readings.values()))
            if (
                len(self._readings) <= self._size
                and taken_monotonic - oldest.taken_monotonic <= self._max_age
            ):
                break
            self._readings.popitem(last=False)
        return body

    def __len__(self) -> int:
        return len(self._readings)
