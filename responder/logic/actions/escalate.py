"""escalate, the pure part: the text that tells humans automatic mitigation is not enough. Pure.

Stage: plan. The message comes from the playbook; `responder.engine.actions.escalate` hands it to the
reporter as an ESCALATION notice and a Warning Event. Nothing is written to the cluster's workloads.
"""

from __future__ import annotations

from responder.logic.actions import base
from responder.models import actions, decisions

__all__ = ["PART", "describe", "message"]


def message(options: actions.Escalate, *, already_done: str | None, diagnostics: str = "") -> str:
    """The escalation text, with what was already tried and the diagnostics captured before it."""
    text = f"{options.message} Already done: {already_done}." if already_done else options.message
    return f"{text}\n{diagnostics}" if diagnostics else text


def describe(plan: decisions.Plan) -> str:
    return f"{plan.target.key} needs a human"


PART = base.PurePart(describe=describe)
