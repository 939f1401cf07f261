"""heap_dump, the I/O part: claim this cooldown's dump on the workload, then run the runtime's command.

Stage: act (runs a command in the alerted container; writes only its claim annotation). Runbook RB-010
Step 5. Off unless `diagnostics.heap_dump.enabled`. The claim is written under the workload's
resourceVersion first, so two replicas never dump the same workload twice in one cooldown; the command goes
through `pods/exec` (`responder.kube.executing`). Every failure (disabled, no runtime named, the claim held,
exec refused, the command missing, a timeout) is the notice's detail and never fails the run. Which command
and what its result means are `responder.logic.dumping`'s; the cooldown arithmetic the pure part's.
"""

from __future__ import annotations

import datetime
import logging

from responder.engine.actions import base
from responder.kube import client, errors, executing, fetching
from responder.logic import dumping
from responder.logic.actions import heap_dump as pure
from responder.models import actions, decisions, diagnostics, notices, settings

__all__ = ["PART", "carry_out"]

logger = logging.getLogger(__name__)

_CLAIM_ATTEMPTS = 3


def _skipped(summary: str, line: str) -> base.AdditionalResult:
    return base.AdditionalResult(
        decisions.Outcome.SKIPPED, summary, line, kind=notices.NoticeKind.ACTION, diagnostics=line
    )


async def _claim(
    kube: client.Kube, given: base.AdditionalInput, *, cooldown: float, now: datetime.datetime, path: str
) -> str | None:
    """Write the claim; None when written, else the line saying why not."""
    workload_path = fetching.workload_path(given.target)
    workload = given.workload
    for attempt in range(_CLAIM_ATTEMPTS):
        if workload is None or attempt:
            try:
                workload = await kube.get(workload_path)
            except errors.KubeError as e:
                return f"no heap dump: the workload could not be read to claim it ({e.message})"
        metadata = workload.get("metadata") or {}
        remaining = pure.remaining_seconds(
            metadata.get("annotations") or {}, now=now, cooldown_seconds=cooldown
        )
        if remaining > 0:
            return pure.cooldown_line(remaining, cooldown_seconds=cooldown)
        body = pure.claim_patch(
            resource_version=str(metadata.get("resourceVersion") or ""),
            now=now,
            by=given.identity,
            pod=given.pod_name or "",
            path=path,
            occurrence=given.incident,
        )
        try:
            await kube.patch(workload_path, body, content_type=client.MERGE_PATCH)
        except errors.KubeConflict:
            continue  # someone wrote in between: read again (another replica's claim shows up then)
        except errors.KubeError as e:
            return f"no heap dump: the claim could not be written ({e.message})"
        return None
    return "no heap dump: the workload kept changing while the dump was being claimed"


async def carry_out(
    kube: client.Kube, *, given: base.AdditionalInput, options: actions.HeapDump
) -> base.AdditionalResult:
    summary = f"heap dump of {given.namespace}/{given.pod_name}"
    config = given.config or settings.Settings()
    dump_options = config.diagnostics.heap_dump
    now = given.now or datetime.datetime.now(datetime.UTC)
    annotations = ((given.workload or {}).get("metadata") or {}).get("annotations") or {}
    command = dumping.choose(annotations=annotations, runtime=options.runtime, options=dump_options, now=now)
    if isinstance(command, str):
        return _skipped(summary, f"no heap dump: {command}")
    if not given.pod_name or given.pod is None:
        return _skipped(summary, "no heap dump: the alerted pod is gone")
    container = given.container or next(
        (c.get("name") for c in (given.pod.get("spec") or {}).get("containers") or []), None
    )
    if not container:
        return _skipped(summary, "no heap dump: the alert names no container")
    if given.dry_run:
        return base.AdditionalResult(
            decisions.Outcome.WOULD_DO,
            summary,
            f"would run the {command.runtime} heap dump in {given.pod_name}/{container}: {' '.join(command.argv)}",
        )
    cooldown = config.guardrails.cooldown_seconds.get(
        actions.Action.HEAP_DUMP, actions.traits_of(actions.Action.HEAP_DUMP).cooldown_seconds
    )
    refused = await _claim(kube, given, cooldown=cooldown, now=now, path=command.path)
    if refused is not None:
        return _skipped(summary, refused)
    result = await executing.exec_in_container(
        kube,
        namespace=given.namespace,
        pod=given.pod_name,
        container=container,
        command=command.argv,
        timeout_seconds=dump_options.timeout_seconds,
        max_output_bytes=dump_options.max_output_bytes,
    )
    dump = dumping.interpret(result, command=command, pod=given.pod_name, container=container)
    line = dumping.describe(dump, timeout_seconds=dump_options.timeout_seconds)
    logger.info("%s", line)
    succeeded = dump.outcome is diagnostics.ExecOutcome.SUCCEEDED
    return base.AdditionalResult(
        decisions.Outcome.DONE if succeeded else decisions.Outcome.FAILED,
        summary,
        line,
        # A dump that could not be made is a line in the incident's thread, not a refusal of the mitigation.
        kind=notices.NoticeKind.ACTION,
        event=True,
        diagnostics=line,
    )


PART = base.Additional(carry_out=carry_out)
