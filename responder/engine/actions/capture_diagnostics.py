"""capture_diagnostics, the I/O part: read the pod's recent Events for the report humans look at next.

Stage: act (reads only). Must not write anything; `responder.logic.actions.capture_diagnostics` formats.
"""

from __future__ import annotations

from responder.engine.actions import base
from responder.kube import client, errors, fetching
from responder.logic.actions import capture_diagnostics as pure
from responder.models import actions, decisions

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
    return base.AdditionalResult(decisions.Outcome.DONE, summary, text, diagnostics=text)


PART = base.Additional(carry_out=carry_out)
