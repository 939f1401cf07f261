"""The memory a follow-up verdict reads: Prometheus' analysis of a workload between two times.

Stage: follow. `MemoryReader` is what the verdict code asks for; `PrometheusMemory` answers it over the
Prometheus reader and the classifier (runbook Step 3). Prometheus is optional: an analysis that cannot say
reads as None and the verdict rests on the pod state. This module reads Prometheus only; it never touches
Kubernetes, never decides a verdict (`responder.logic.verdicts`) and never reports.
"""

from __future__ import annotations

import datetime
from typing import Protocol

from responder import metrics as metrics_mod
from responder.logic import verdicts
from responder.models import follow_ups, settings, targets
from responder.prometheus import reading

__all__ = ["MemoryReader", "PrometheusMemory"]


class MemoryReader(Protocol):
    """The Prometheus analysis of a workload's memory between two times (None: not available now)."""

    async def read(
        self,
        *,
        target: targets.Target,
        container: str | None,
        since: datetime.datetime,
        until: datetime.datetime,
    ) -> follow_ups.MemoryReading | None: ...


class PrometheusMemory:
    """`MemoryReader` over the Prometheus reader and the classifier (runbook Step 3): the workload's memory
    from the mitigation to the verdict (within Prometheus' lookback bounds), as a verdict reads it. An
    analysis that cannot say (Prometheus absent, slow, no data) reads as None: the verdict then rests on the
    pod state and says so. Build once; `await close()` at shutdown."""

    _MIN_LOOKBACK_SECONDS = 3600.0
    _MAX_LOOKBACK_SECONDS = 7 * 86400.0

    def __init__(
        self,
        config: settings.PrometheusSettings,
        *,
        authorization: str | None,
        metrics: metrics_mod.Metrics | None,
    ) -> None:
        self.config = config
        self.authorization = authorization
        self.metrics = metrics
        self.reader = reading.Reader(config, authorization=authorization, metrics=metrics)

    async def close(self) -> None:
        await self.reader.close()

    async def read(
        self,
        *,
        target: targets.Target,
        container: str | None,
        since: datetime.datetime,
        until: datetime.datetime,
    ) -> follow_ups.MemoryReading | None:
        lookback = min(
            max((until - since).total_seconds(), self._MIN_LOOKBACK_SECONDS), self._MAX_LOOKBACK_SECONDS
        )
        # The same session and bounds, over the time since the mitigation rather than the configured window.
        windowed = reading.Reader(
            self.config.model_copy(update={"lookback_seconds": lookback}),
            authorization=self.authorization,
            metrics=self.metrics,
            session=self.reader.session,
        )
        analysis = await reading.investigate(
            windowed,
            namespace=target.namespace,
            kind=target.kind.value,
            name=target.name,
            container=container,
            now=until.timestamp(),
        )
        return verdicts.reading_from_analysis(analysis)
