"""Investigation stage (RB-010 Step 3): the memory analysis that rides on a decision.

While the workload is located (started on the one the alert most likely names) and before planning, the
processor asks the `Investigator` for the workload's memory pattern; the answer may re-route the alert to a
playbook restricted to that pattern, and it is shown in notices, the Event and the log line. The Investigator wraps the Prometheus reader and the classifier; it
never raises and never takes longer than `prometheus.timeout_seconds` (plus the classification, a few
milliseconds per container series, off the event loop): Prometheus is an optional part and must never block
or delay a mitigation beyond that.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import logging
from collections.abc import AsyncIterator, Sequence

from responder import metrics as metrics_mod
from responder.engine import reporting
from responder.logic import resolving, routing
from responder.models import alerts, analyses, settings, targets
from responder.prometheus import reading

__all__ = ["Early", "Investigator"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class Early:
    """An analysis started before the workload was located, for the workload the alert most likely names."""

    target: targets.Target
    task: asyncio.Task[analyses.Analysis]


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

    @contextlib.asynccontextmanager
    async def early(
        self, *, event: alerts.AlertEvent, names: settings.AlertsSettings, now: datetime.datetime
    ) -> AsyncIterator[Early | None]:
        """The memory history of the workload the alert most likely names, read while the pod's owners are
        walked (the two take about as long; one after the other, the analysis would add all of its time to
        the reaction). Cancelled when not used."""
        guess = resolving.likely_target(event, names)
        if guess is None:
            yield None
            return
        task = asyncio.create_task(
            self.investigate(target=guess, event=event, now=now), name=f"investigate:{guess.key}"
        )
        try:
            yield Early(guess, task)
        finally:
            if not task.done():
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def investigate_run(
        self,
        run: reporting.Run,
        *,
        playbooks: Sequence[settings.Playbook],
        now: datetime.datetime,
        early: Early | None = None,
    ) -> None:
        """Investigation stage for a located run: its workload's pattern, and the playbook it routes the alert
        to (`run.item` is replaced when that differs). `early`: the analysis already under way for the
        workload the alert most likely names, used when that is the workload located."""
        if run.target is None:
            return
        if early is not None and early.target == run.target:
            run.analysis = await early.task
        else:
            run.analysis = await self.investigate(target=run.target, event=run.event, now=now)
        routed = routing.route(run.event, playbooks, pattern=run.analysis.pattern)
        if routed is not None and routed is not run.item.playbook:
            logger.info(
                "%s: %s pattern routes the alert to playbook %s instead of %s",
                run.target.key,
                run.analysis.pattern.value,
                routed.name,
                run.playbook,
            )
            run.item = dataclasses.replace(run.item, playbook=routed)
