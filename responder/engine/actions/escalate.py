"""escalate, the I/O part: hand the escalation to the reporter (an ESCALATION notice and a Warning Event).

Stage: act (notifies only). Must not write to the cluster's workloads; the text is
`responder.logic.actions.escalate`'s.
"""

from __future__ import annotations

from responder.engine.actions import base
from responder.kube import client
from responder.logic.actions import escalate as pure
from responder.models import actions, decisions, notices

__all__ = ["PART", "carry_out"]


async def carry_out(
    kube: client.Kube, *, given: base.AdditionalInput, options: actions.Escalate
) -> base.AdditionalResult:
    text = pure.message(options, already_done=given.done, diagnostics=given.diagnostics)
    return base.AdditionalResult(
        decisions.Outcome.ESCALATED,
        f"{given.target.key} needs a human: {options.message}",
        text,
        kind=notices.NoticeKind.ESCALATION,
        event=True,
    )


PART = base.Additional(carry_out=carry_out)
