"""capture_diagnostics, the I/O part: read the pod's recent Events for the report humans look at next.

Stage: act (reads only). Must not write anything; `responder.logic.actions.capture_diagnostics` formats.
"""

from __future__ import annotations

from responder.engine.actions import base
from responder.kube import client, errors, fetching, podlogs
from responder.logic import excerpting
from responder.logic.actions import capture_diagnostics as pure
from responder.models import actions, decisions, settings

__all__ = ["PART", "carry_out"]


async def carry_out(
    kube: client.Kube, *, given: base.AdditionalInput, options: actions.CaptureDiagnostics
) -> base.AdditionalResult:
    """A plain-text report; never raises for a cluster error (it is reported in the text instead)."""
    summary = f"diagnostics of {given.namespace}/{given.pod_name}"
    if not given.pod_name:
        text = "no pod named by the alert: no diagnostics"
        return base.AdditionalResult(decisions.Outcome.DONE, summary, text, diagnostics=text)
    try:
        recent = await fetching.pod_events(kube, given.namespace, given.pod_name, limit=options.events)
    except errors.KubeError as e:
        text = pure.report(
            namespace=given.namespace,
            pod_name=given.pod_name,
            pod=given.pod,
            events=None,
            events_error=e.message,
        )
    else:
        text = pure.report(namespace=given.namespace, pod_name=given.pod_name, pod=given.pod, events=recent)
    log_options = (given.config or settings.Settings()).diagnostics.previous_logs
    log_lines: tuple[str, ...] = ()
    event_note = ""
    if log_options.enabled and given.container and given.pod is not None:
        # Runbook Step 4: the OOM-killed run's own log, grepped for what memory trouble prints.
        found = await podlogs.read_previous(
            kube,
            namespace=given.namespace,
            pod=given.pod_name,
            container=given.container,
            options=log_options,
            pod_body=given.pod,
        )
        head, *matches = excerpting.describe(found, options=log_options)
        text = f"{text}\n{head}"
        log_lines = tuple(matches)
        event_note = "\n".join([head, *log_lines])
    return base.AdditionalResult(
        decisions.Outcome.DONE,
        summary,
        text,
        event=bool(event_note),
        event_note=event_note,
        diagnostics="\n".join([text, *log_lines]),
        log_lines=log_lines,
    )


PART = base.Additional(carry_out=carry_out)
