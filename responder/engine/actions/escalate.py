"""escalate: tell humans that automatic mitigation is not enough.

Stage: act (notifies only). The message comes from the playbook; the engine sends it as an ESCALATION
notice. Must not write to the cluster.
"""

from __future__ import annotations

from responder.models import settings

__all__ = ["message"]


def message(options: settings.Escalate, *, already_done: str | None) -> str:
    """The escalation text, with what was already tried."""
    if already_done:
        return f"{options.message} Already done: {already_done}."
    return options.message
