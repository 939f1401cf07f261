"""heap_dump, the pure part: at most one heap dump per workload per cooldown, claimed on the workload. Pure.

Stage: investigate. Runbook RB-010 Step 5. The command to run and the reading of its result are
`responder.logic.dumping`'s; this part decides whether this workload's cooldown allows a dump now, from the
claim annotation the I/O part (`responder.engine.actions.heap_dump`) writes under the workload's
resourceVersion before it runs anything: of two replicas handling the same alert, one claims and dumps, the
other finds the claim. The claim is kept apart from the ledger: a heap dump is no mitigation, and must not
count as the answer to an alert or as the last action a new OOM kill is compared with.
"""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import Mapping
from typing import Any

from responder.logic.actions import base
from responder.models import decisions

__all__ = ["CLAIM_ANNOTATION", "PART", "claim_patch", "cooldown_line", "describe", "remaining_seconds"]

CLAIM_ANNOTATION = "oom-responder.io/heap-dump"
"""On the workload: the last heap dump's time, replica, pod and path, as JSON."""


def _claimed_at(annotations: Mapping[str, str]) -> datetime.datetime | None:
    raw = annotations.get(CLAIM_ANNOTATION)
    if not raw:
        return None
    try:
        data = json.loads(raw)
        at = datetime.datetime.fromisoformat(str(data["at"]).replace("Z", "+00:00"))
    except (ValueError, KeyError, TypeError):
        # A damaged claim must not block dumps forever; nor may it be read as "never".
        return None
    return at if at.tzinfo is not None else at.replace(tzinfo=datetime.UTC)


def remaining_seconds(
    annotations: Mapping[str, str], *, now: datetime.datetime, cooldown_seconds: float
) -> float:
    """Seconds until the workload may be dumped again (0: now)."""
    at = _claimed_at(annotations)
    if at is None or cooldown_seconds <= 0:
        return 0.0
    return max(0.0, cooldown_seconds - (now - at).total_seconds())


def claim_patch(
    *, resource_version: str, now: datetime.datetime, by: str, pod: str, path: str, occurrence: str
) -> dict[str, Any]:
    """The claim, written under the resourceVersion just read (a 409 means another replica came first)."""
    claim = {
        "at": now.astimezone(datetime.UTC).isoformat(),
        "by": by,
        "pod": pod,
        "path": path,
        "occurrence": occurrence,
    }
    return {
        "metadata": {
            "resourceVersion": resource_version,
            "annotations": {CLAIM_ANNOTATION: json.dumps(claim, separators=(",", ":"))},
        }
    }


def cooldown_line(remaining: float, *, cooldown_seconds: float) -> str:
    return (
        f"no heap dump: one was taken on this workload less than {cooldown_seconds:g}s ago "
        f"({math.ceil(remaining)}s to go; annotation {CLAIM_ANNOTATION})"
    )


def describe(plan: decisions.Plan) -> str:
    return f"heap dump of {plan.target.namespace}/{plan.pod}"


PART = base.PurePart(describe=describe)
