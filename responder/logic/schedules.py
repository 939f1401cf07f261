"""Restart schedules' arithmetic: interval, due times, stops, and the restart's stamp and ledger entry. Pure.

Stage: follow (runbook Solution 4). A schedule's interval is fixed or derived from the time to OOM; it stops
on an image change, expiry, its maximum count or enough stable verdicts in a row. Nothing here does I/O,
reads the clock or takes a verdict (`responder.logic.verdicts`).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from responder.logic import following
from responder.models import actions, follow_ups, ledgers, settings, targets

__all__ = [
    "after_restart",
    "after_verdict",
    "can_restart",
    "images_of",
    "is_paused",
    "is_scaled_to_zero",
    "new_schedule",
    "restart_entry",
    "restart_interval",
    "restart_occurrence",
    "restart_patch",
    "schedule_stop",
    "stop_schedule",
    "time_to_oom_from_pods",
]

_TEMPLATED = (
    targets.WorkloadKind.DEPLOYMENT,
    targets.WorkloadKind.STATEFUL_SET,
    targets.WorkloadKind.DAEMON_SET,
)


def time_to_oom_from_pods(pods: Sequence[following.Body], *, container: str | None) -> float | None:
    """How long the OOM-killed containers had run before the kill (the shortest), in seconds.

    Without Prometheus this is the pod state's own measure of time to OOM: the kubelet keeps the killed
    container's `startedAt` and `finishedAt` in `lastState.terminated`.
    """
    lifetimes = []
    for pod in pods:
        for status in following.container_statuses(pod):
            if container is not None and status.get("name") != container:
                continue
            for holder in (status.get("lastState") or {}, status.get("state") or {}):
                terminated = holder.get("terminated") or {}
                if terminated.get("reason") != "OOMKilled":
                    continue
                started = following.parse_time(terminated.get("startedAt"))
                finished = following.parse_time(terminated.get("finishedAt"))
                if started is not None and finished is not None and finished > started:
                    lifetimes.append((finished - started).total_seconds())
    return min(lifetimes) if lifetimes else None


def restart_interval(
    options: settings.ScheduledRestart, *, time_to_oom_seconds: float | None
) -> tuple[float, str]:
    """The interval between restarts and how it was chosen (said in the notice)."""
    if options.time_to_oom_fraction is None:
        return (
            options.interval_seconds,
            f"every {following.describe_duration(options.interval_seconds)} (fixed)",
        )
    if time_to_oom_seconds is None or time_to_oom_seconds <= 0:
        return (
            options.interval_seconds,
            f"every {following.describe_duration(options.interval_seconds)} (no time to OOM known: the fixed interval)",
        )
    derived = time_to_oom_seconds * options.time_to_oom_fraction
    clamped = min(max(derived, options.min_interval_seconds), options.max_interval_seconds)
    bound = ""
    if clamped != derived:
        bound = " raised to the floor" if clamped > derived else " lowered to the ceiling"
    return (
        clamped,
        f"every {following.describe_duration(clamped)} ({options.time_to_oom_fraction:g} × time to OOM "
        f"{following.describe_duration(time_to_oom_seconds)}{bound})",
    )


def images_of(workload: following.Body) -> dict[str, str]:
    """Container name → image of the pod template (of the pod itself for a bare Pod)."""
    spec = workload.get("spec") or {}
    template_spec = (spec.get("template") or {}).get("spec") if "template" in spec else spec
    return {
        str(c.get("name")): str(c.get("image") or "")
        for c in (template_spec or {}).get("containers") or []
        if isinstance(c, Mapping)
    }


def new_schedule(
    *,
    options: settings.ScheduledRestart,
    playbook: str,
    incident: str,
    workload: following.Body,
    now: datetime.datetime,
    time_to_oom_seconds: float | None,
) -> tuple[follow_ups.Schedule, str]:
    """A restart schedule beginning now (the first restart one interval from now), and how it was chosen."""
    interval, how = restart_interval(options, time_to_oom_seconds=time_to_oom_seconds)
    schedule = follow_ups.Schedule(
        playbook=playbook,
        incident=incident,
        interval_seconds=interval,
        next_at=now + datetime.timedelta(seconds=interval),
        expires_at=now + datetime.timedelta(seconds=options.expire_after_seconds),
        max_count=options.max_count,
        images=images_of(workload),
        stable_to_stop=options.stable_verdicts_to_stop,
    )
    until = f"until {schedule.expires_at.strftime('%Y-%m-%d %H:%M UTC')}"
    if options.max_count is not None:
        until += f" or {options.max_count} restarts"
    return schedule, f"rolling restart {how}, {until}"


def schedule_stop(
    schedule: follow_ups.Schedule, *, now: datetime.datetime, workload: following.Body
) -> tuple[follow_ups.StopReason, str] | None:
    """Why the schedule must stop before its next restart, or None to go on (checked when it falls due)."""
    if schedule.stop_requested_by:
        return follow_ups.StopReason.CANCELLED, f"cancelled by {schedule.stop_requested_by}"
    images = images_of(workload)
    changed = sorted(
        name for name, image in schedule.images.items() if name in images and images[name] != image
    )
    if changed:
        details = ", ".join(f"{name}: {schedule.images[name]} → {images[name]}" for name in changed)
        return follow_ups.StopReason.IMAGE_CHANGED, f"the image changed ({details}): the fix shipped"
    if now >= schedule.expires_at:
        return follow_ups.StopReason.EXPIRED, f"expired after {schedule.count} restart(s)"
    if schedule.max_count is not None and schedule.count >= schedule.max_count:
        return follow_ups.StopReason.MAX_COUNT, f"all {schedule.max_count} restarts done"
    return None


def stop_schedule(
    record: follow_ups.FollowUp, reason: follow_ups.StopReason, *, now: datetime.datetime
) -> follow_ups.FollowUp:
    if record.schedule is None or record.schedule.stopped is not None:
        return record
    return record.model_copy(
        update={"schedule": record.schedule.model_copy(update={"stopped": reason, "stopped_at": now})}
    )


def restart_occurrence(schedule: follow_ups.Schedule, number: int) -> str:
    """The ledger occurrence of restart `number`: finding it in the ledger proves that restart was written."""
    return f"{schedule.incident}/restart-{number}"


def after_restart(schedule: follow_ups.Schedule, *, now: datetime.datetime) -> follow_ups.Schedule:
    """The schedule after one more restart: the next one an interval later (never a burst to catch up after
    time no replica ran: the next one is then an interval from now)."""
    step = datetime.timedelta(seconds=schedule.interval_seconds)
    following = schedule.next_at + step
    if following <= now:
        following = now + step
    return schedule.model_copy(update={"count": schedule.count + 1, "next_at": following, "blocked": None})


def after_verdict(
    record: follow_ups.FollowUp, kind: follow_ups.VerdictKind, *, now: datetime.datetime
) -> tuple[follow_ups.FollowUp, bool]:
    """The record after a verdict as far as its schedule goes; True when that verdict stops the schedule."""
    schedule = following.active_schedule(record.schedule)
    if schedule is None:
        return record, False
    seen = schedule.stable_seen + 1 if kind is follow_ups.VerdictKind.STABLE else 0
    record = record.model_copy(update={"schedule": schedule.model_copy(update={"stable_seen": seen})})
    if seen >= schedule.stable_to_stop:
        return stop_schedule(record, follow_ups.StopReason.STABLE, now=now), True
    return record, False


def can_restart(kind: targets.WorkloadKind) -> bool:
    return kind in _TEMPLATED


def restart_entry(
    *,
    schedule: follow_ups.Schedule,
    workload: following.Body,
    now: datetime.datetime,
    identity: str,
    thread: str | None,
) -> ledgers.LedgerEntry:
    """The ledger entry of the schedule's next restart (its occurrence proves it was written)."""
    previous = (
        (((workload.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("annotations") or {}
    ).get(actions.RESTARTED_AT_ANNOTATION)
    return ledgers.LedgerEntry(
        action=settings.Action.ROLLOUT_RESTART,
        from_value=previous,
        to_value=now.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        playbook=schedule.playbook,
        occurrence=restart_occurrence(schedule, schedule.count + 1),
        at=now,
        by=identity,
        thread=thread,
    )


def restart_patch(*, workload: following.Body, entry: ledgers.LedgerEntry) -> dict[str, Any]:
    """The restart (kubectl's restartedAt stamp on the pod template), its ledger entry and the
    resourceVersion precondition, as one strategic merge patch: a 409 when the workload changed since read."""
    metadata = workload.get("metadata") or {}
    entries = ledgers.load((metadata.get("annotations") or {}).get(ledgers.ANNOTATION))
    return {
        "metadata": {
            "resourceVersion": metadata.get("resourceVersion"),
            "annotations": {ledgers.ANNOTATION: ledgers.dump(ledgers.append(entries, entry))},
        },
        "spec": {
            "template": {"metadata": {"annotations": {actions.RESTARTED_AT_ANNOTATION: entry.to_value}}}
        },
    }


def is_scaled_to_zero(workload: following.Body) -> bool:
    return (workload.get("spec") or {}).get("replicas") == 0


def is_paused(workload: following.Body) -> bool:
    return bool((workload.get("spec") or {}).get("paused"))
