"""Following a mitigated workload after the fact: the record, its due times and its claims. Pure.

Stage: follow (runbook RB-010 Step 6 and Solution 4). Every function here takes what it needs as arguments
(the follow-up record, the workload and its pods as the API's JSON, the settings and the time) and returns a
new record or a value; `responder.engine.following` and its jobs read, call these, write by
compare-and-swap and report. The verdicts are `responder.logic.verdicts`, the restart schedules'
arithmetic `responder.logic.schedules`; this module keeps what both read (pods' restart counts and
times, the wording of durations). Nothing here does I/O or reads the clock.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from responder.models import follow_ups, settings, targets

__all__ = [
    "Body",
    "active_schedule",
    "add_incident",
    "begin",
    "claim",
    "container_statuses",
    "describe_duration",
    "describe_late",
    "due_at",
    "horizons",
    "is_claimable",
    "is_finished",
    "parse_time",
    "pod_key",
    "pod_selector",
    "release",
    "restart_counts",
]

Body = Mapping[str, Any]


def horizons(
    *, acted_at: datetime.datetime, horizons_seconds: Iterable[float]
) -> tuple[follow_ups.Horizon, ...]:
    """The verdicts due after a mitigation at `acted_at`, in the order they fall due."""
    return tuple(
        follow_ups.Horizon(seconds=seconds, due_at=acted_at + datetime.timedelta(seconds=seconds))
        for seconds in sorted(horizons_seconds)
    )


def container_statuses(pod: Body) -> list[Body]:
    status = pod.get("status") or {}
    return [s for s in status.get("containerStatuses") or [] if isinstance(s, Mapping)]


def pod_key(pod: Body) -> str:
    metadata = pod.get("metadata") or {}
    return str(metadata.get("uid") or metadata.get("name") or "?")


def restart_counts(pods: Sequence[Body], *, container: str | None) -> dict[str, int]:
    """pod uid/container → restartCount, for `container` (or every container when None)."""
    counts: dict[str, int] = {}
    for pod in pods:
        for status in container_statuses(pod):
            name = str(status.get("name") or "")
            if container is not None and name != container:
                continue
            counts[f"{pod_key(pod)}/{name}"] = int(status.get("restartCount") or 0)
    return counts


def begin(
    *,
    target: targets.Target,
    uid: str | None,
    incident: str,
    playbook: str,
    action: settings.Action,
    acted_at: datetime.datetime,
    config: settings.FollowUpSettings,
    pods: Sequence[Body] = (),
    thread: str | None = None,
    container: str | None = None,
    verification: follow_ups.Verification | None = None,
) -> follow_ups.FollowUp:
    """A new record for a mitigation just written: its horizons, the restart counts to compare with later."""
    return follow_ups.FollowUp(
        kind=target.kind,
        namespace=target.namespace,
        name=target.name,
        uid=uid,
        incident=incident,
        playbook=playbook,
        action=action,
        acted_at=acted_at,
        thread=thread,
        container=container,
        horizons=horizons(acted_at=acted_at, horizons_seconds=config.horizons_seconds)
        if config.enabled
        else (),
        restarts=restart_counts(pods, container=container),
        verification=verification,
    )


def add_incident(existing: follow_ups.FollowUp | None, new: follow_ups.FollowUp) -> follow_ups.FollowUp:
    """The record after another mitigation on the same workload: the newest one is followed from now on.

    Its verdict series and verification replace the older ones (judging the old raise after a newer one says
    nothing); a running schedule carries on (a new one is not begun beside it); a claim is kept so that the holder still releases it. The same
    incident again (a replica's retry) changes nothing.
    """
    if existing is None or existing.ended is not None:
        return new
    if existing.incident == new.incident:
        verification = existing.verification or new.verification
        return existing.model_copy(
            update={"verification": verification, "thread": existing.thread or new.thread}
        )
    return new.model_copy(
        update={
            "schedule": active_schedule(existing.schedule) or new.schedule or existing.schedule,
            "claim": existing.claim,
            "thread": new.thread or existing.thread,
        }
    )


def active_schedule(schedule: follow_ups.Schedule | None) -> follow_ups.Schedule | None:
    return schedule if schedule is not None and schedule.stopped is None else None


def due_at(record: follow_ups.FollowUp, *, verification_poll_seconds: float) -> datetime.datetime | None:
    """When the record next needs a replica (None: nothing is left to do: a tombstone, or over and to be
    made one at the next look)."""
    times: list[datetime.datetime] = []
    if record.ended is not None:
        return None  # a tombstone: idle until the workload's next mitigation reuses it
    if not record.confirmed:
        # An unconfirmed mitigation is looked up in the ledger as soon as its writer's claim lapses.
        return record.acted_at
    if record.verification is not None:
        # A rollout is checked every poll; an unclaimed pending verification is therefore always due.
        times.append(record.verification.since + datetime.timedelta(seconds=verification_poll_seconds))
    pending = [h for h in record.horizons if h.verdict is None]
    if pending:
        times.append(pending[0].due_at)
    schedule = active_schedule(record.schedule)
    if schedule is not None:
        times.append(
            record.acted_at if schedule.stop_requested_by else min(schedule.next_at, schedule.expires_at)
        )
    return min(times) if times else None


def is_finished(record: follow_ups.FollowUp) -> bool:
    """Nothing is left to do: every verdict taken, no rollout pending, no schedule running."""
    return (
        record.confirmed
        and record.verification is None
        and all(h.verdict is not None for h in record.horizons)
        and active_schedule(record.schedule) is None
    )


def is_claimable(record: follow_ups.FollowUp, *, now: datetime.datetime) -> bool:
    """No replica holds it, or its claim lapsed (the holder died or hung)."""
    return record.claim is None or record.claim.until <= now


def claim(
    record: follow_ups.FollowUp, *, holder: str, now: datetime.datetime, seconds: float
) -> follow_ups.FollowUp | None:
    """The record claimed by `holder` until now + seconds; None when another replica holds a live claim.

    A holder renewing its own claim gets it. Written by compare-and-swap: of two replicas claiming at once,
    exactly one write succeeds.
    """
    if record.claim is not None and record.claim.holder != holder and record.claim.until > now:
        return None
    until = now + datetime.timedelta(seconds=seconds)
    return record.model_copy(update={"claim": follow_ups.Claim(holder=holder, until=until)})


def release(record: follow_ups.FollowUp, *, holder: str) -> follow_ups.FollowUp:
    """The record without `holder`'s claim (another's claim is left alone)."""
    if record.claim is not None and record.claim.holder == holder:
        return record.model_copy(update={"claim": None})
    return record


def parse_time(raw: Any) -> datetime.datetime | None:
    if not isinstance(raw, str) or not raw:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def describe_duration(seconds: float) -> str:
    """ "2h 5m", "3m 10s", "45s"."""
    whole = max(0, round(seconds))
    if whole >= 2 * 86400 and whole % 86400 == 0:
        return f"{whole // 86400}d"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m {secs}s" if secs else f"{minutes}m"
    return f"{secs}s"


def describe_late(late_seconds: float, *, late_after_seconds: float) -> str:
    """ "" when on time; otherwise a sentence saying how late the verdict was taken and why."""
    if late_seconds <= late_after_seconds:
        return ""
    return f"Taken {describe_duration(late_seconds)} late: no replica was running when it fell due."


def pod_selector(workload: Body) -> str | None:
    """The workload's pod selector as a label-selector string (None: it has none, e.g. a bare Pod)."""
    selector = (workload.get("spec") or {}).get("selector") or {}
    parts = [f"{key}={value}" for key, value in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key"), expression.get("operator")
        values = ",".join(expression.get("values") or [])
        if operator == "In":
            parts.append(f"{key} in ({values})")
        elif operator == "NotIn":
            parts.append(f"{key} notin ({values})")
        elif operator == "Exists":
            parts.append(str(key))
        elif operator == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts) or None
