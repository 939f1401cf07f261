"""Investigation stage (RB-010 Step 3): the memory analysis that rides on a decision.

Between locating the workload and planning, the processor asks the `Investigator` for the workload's
memory pattern; the answer may re-route the alert to a playbook restricted to that pattern, and it is shown
in notices, the Event and the log line. The Investigator wraps the Prometheus reader and the classifier; it
never raises and never takes longer than `prometheus.timeout_seconds` (plus the classification, a few
milliseconds per container series, off the event loop): Prometheus is an optional part and must never block
or delay a mitigation beyond that.
"""

from __future__ import annotations

import asyncio
import datetime
import logging

from responder import metrics as metrics_mod
from responder.models import alerts, analyses, settings, targets
from responder.prometheus import reading

__all__ = ["Investigator"]

logger = logging.getLogger(__name__)


class Investigator:
    """Reads and analyses a workload's memory history. Build once from settings; `await close()` at shutdown."""

    def __init__(
        self,
        config: settings.PrometheusSettings,
        *,
        authorization: str | None,
        metrics: metrics_mod.Metrics | None,
    ) -> None:
        self.reader = reading.Reader(config, authorization=authorization, metrics=metrics)

    async def close(self) -> None:
        await self.reader.close()

    async def investigate(
        self, *, target: targets.Target, event: alerts.AlertEvent, now: datetime.datetime
    ) -> analyses.Analysis:
        """The workload's pattern; `insufficient_data` with the reason when anything goes wrong."""
        try:
            return await reading.investigate(
                self.reader,
                namespace=target.namespace,
                kind=target.kind.value,
                name=target.name,
                container=event.container or None,
                now=now.timestamp(),
            )
        except asyncio.CancelledError:
            raise
        except Exception as e:  # an optional part: its bug must not stop the mitigation
            logger.exception("memory analysis of %s failed", target.key)
            return analyses.Analysis(
                pattern=analyses.Pattern.INSUFFICIENT_DATA,
                reason=f"the analysis failed: {type(e).__name__}: {e}"[:300],
            )
