"""Following a mitigated workload after the fact: verdicts, restart schedules, due times and claims. Pure.

Stage: follow (runbook RB-010 Step 6 and Solution 4). Every function here takes what it needs as arguments
(the follow-up record, the workload and its pods as the API's JSON, the memory reading, the settings and the
time) and returns a new record or a verdict; `responder.engine.following` reads, calls these, writes by
compare-and-swap and reports. Nothing here does I/O or reads the clock.

Judging follows the runbook's success criteria: no OOM kills since the mitigation, restart count not
increasing (at most `max_restarts_per_hour` since the last look), memory under `memory_high_percent` of the
limit and not rising. The first two come from the pods' status; the last two only from Prometheus, and a
verdict without it says so.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from responder.logic import resolving
from responder.models import actions, analyses, follow_ups, ledgers, settings, targets

__all__ = [
    "add_incident",
    "after_restart",
    "after_verdict",
    "begin",
    "can_restart",
    "claim",
    "closing_summary",
    "describe_duration",
    "describe_late",
    "due_at",
    "horizons",
    "images_of",
    "is_claimable",
    "is_finished",
    "is_paused",
    "is_scaled_to_zero",
    "judge",
    "new_schedule",
    "oom_kills_since",
    "pod_selector",
    "reading_from_analysis",
    "release",
    "restart_counts",
    "restart_entry",
    "restart_interval",
    "restart_occurrence",
    "restart_patch",
    "schedule_stop",
    "stop_schedule",
    "time_to_oom_from_pods",
    "with_verdict",
]

Body = Mapping[str, Any]

_TEMPLATED = (
    targets.WorkloadKind.DEPLOYMENT,
    targets.WorkloadKind.STATEFUL_SET,
    targets.WorkloadKind.DAEMON_SET,
)


# ---- starting a record -------------------------------------------------------------------------------------


def horizons(
    *, acted_at: datetime.datetime, horizons_seconds: Iterable[float]
) -> tuple[follow_ups.Horizon, ...]:
    """The verdicts due after a mitigation at `acted_at`, in the order they fall due."""
    return tuple(
        follow_ups.Horizon(seconds=seconds, due_at=acted_at + datetime.timedelta(seconds=seconds))
        for seconds in sorted(horizons_seconds)
    )


def _container_statuses(pod: Body) -> list[Body]:
    status = pod.get("status") or {}
    return [s for s in status.get("containerStatuses") or [] if isinstance(s, Mapping)]


def _pod_key(pod: Body) -> str:
    metadata = pod.get("metadata") or {}
    return str(metadata.get("uid") or metadata.get("name") or "?")


def restart_counts(pods: Sequence[Body], *, container: str | None) -> dict[str, int]:
    """pod uid/container → restartCount, for `container` (or every container when None)."""
    counts: dict[str, int] = {}
    for pod in pods:
        for status in _container_statuses(pod):
            name = str(status.get("name") or "")
            if container is not None and name != container:
                continue
            counts[f"{_pod_key(pod)}/{name}"] = int(status.get("restartCount") or 0)
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
            "schedule": _active(existing.schedule) or new.schedule or existing.schedule,
            "claim": existing.claim,
            "thread": new.thread or existing.thread,
        }
    )


# ---- due times and claims ------------------------------------------------------------------------------------


def _active(schedule: follow_ups.Schedule | None) -> follow_ups.Schedule | None:
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
    schedule = _active(record.schedule)
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
        and _active(record.schedule) is None
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


# ---- verdicts ---------------------------------------------------------------------------------------------


def _parse_time(raw: Any) -> datetime.datetime | None:
    if not isinstance(raw, str) or not raw:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def oom_kills_since(
    pods: Sequence[Body], *, container: str | None, since: datetime.datetime
) -> list[resolving.Kill]:
    """The OOM kills the pods' status reports as finished after `since` (newest per container and pod)."""
    kills = []
    for pod in pods:
        kill = resolving.last_kill(pod, container)
        if kill is not None and kill.finished_at > since:
            kills.append(kill)
    return sorted(kills, key=lambda kill: kill.finished_at)


def time_to_oom_from_pods(pods: Sequence[Body], *, container: str | None) -> float | None:
    """How long the OOM-killed containers had run before the kill (the shortest), in seconds.

    Without Prometheus this is the pod state's own measure of time to OOM: the kubelet keeps the killed
    container's `startedAt` and `finishedAt` in `lastState.terminated`.
    """
    lifetimes = []
    for pod in pods:
        for status in _container_statuses(pod):
            if container is not None and status.get("name") != container:
                continue
            for holder in (status.get("lastState") or {}, status.get("state") or {}):
                terminated = holder.get("terminated") or {}
                if terminated.get("reason") != "OOMKilled":
                    continue
                started = _parse_time(terminated.get("startedAt"))
                finished = _parse_time(terminated.get("finishedAt"))
                if started is not None and finished is not None and finished > started:
                    lifetimes.append((finished - started).total_seconds())
    return min(lifetimes) if lifetimes else None


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


def judge(
    *,
    record: follow_ups.FollowUp,
    horizon: follow_ups.Horizon,
    workload: Body | None,
    pods: Sequence[Body],
    memory: follow_ups.MemoryReading | None,
    config: settings.FollowUpSettings,
    now: datetime.datetime,
) -> tuple[follow_ups.Verdict, dict[str, int]]:
    """The verdict at `horizon` and the restart counts to compare with next time.

    `workload` None means it could not be read; `pods` are the workload's current pods. The runbook's
    criteria, in order: an OOM kill since the mitigation fails it; restarts since the last look above the
    allowed rate fail it; memory at or above the threshold, or rising with a time to OOM, is still leaking;
    otherwise stable. Without `memory` the verdict rests on the pod state alone and says so.
    """
    evidence = follow_ups.Evidence.POD_STATE if memory is None else follow_ups.Evidence.PROMETHEUS
    late = max(0.0, (now - horizon.due_at).total_seconds())
    label = follow_ups.horizon_label(horizon.seconds)
    notes = [describe_late(late, late_after_seconds=config.late_after_seconds)]
    if memory is None:
        notes.append("Memory % of limit and trend not checked (no Prometheus analysis): pod state only.")

    def verdict(
        kind: follow_ups.VerdictKind, detail: str, restarts: dict[str, int] | None = None
    ) -> tuple[follow_ups.Verdict, dict[str, int]]:
        text = " ".join(part for part in (detail, *notes) if part)
        return (
            follow_ups.Verdict(
                kind=kind,
                evidence=evidence,
                detail=text,
                at=now,
                late_seconds=late,
                peak_percent=memory.peak_percent_of_limit if memory is not None else None,
                time_to_oom_seconds=memory.time_to_oom_seconds if memory is not None else None,
            ),
            dict(record.restarts) if restarts is None else restarts,
        )

    if workload is None:
        return verdict(follow_ups.VerdictKind.UNKNOWN, f"{label}: the workload could not be read.")
    wanted = (workload.get("spec") or {}).get("replicas")
    if not pods:
        why = "it is scaled to 0" if wanted == 0 else "it has no pods"
        return verdict(follow_ups.VerdictKind.UNKNOWN, f"{label}: nothing to judge, {why}.")
    kills = oom_kills_since(pods, container=record.container, since=record.acted_at)
    counts = restart_counts(pods, container=record.container)
    if kills:
        newest = kills[-1]
        return verdict(
            follow_ups.VerdictKind.FAILED,
            f"{label}: OOMKilled again ({len(kills)} container(s); newest {newest.container} at "
            f"{newest.finished_at.isoformat()}), {describe_duration((newest.finished_at - record.acted_at).total_seconds())} "
            f"after the mitigation.",
            counts,
        )
    # Restarts since the last look: a pod created since counts from zero; an older one whose count was not
    # taken then (its baseline is not known) counts from this look on.
    previous = [h.verdict.at for h in record.horizons if h.verdict is not None]
    looked_at = max(previous) if previous else record.acted_at
    created = {
        _pod_key(pod): _parse_time((pod.get("metadata") or {}).get("creationTimestamp")) for pod in pods
    }
    restarted = 0
    for key, count in counts.items():
        if key in record.restarts:
            restarted += max(0, count - record.restarts[key])
        else:
            born = created.get(key.rsplit("/", 1)[0])
            restarted += count if born is not None and born >= looked_at else 0
    hours = max((now - looked_at).total_seconds() / 3600, 1e-9)
    if restarted and restarted / hours > config.max_restarts_per_hour:
        return verdict(
            follow_ups.VerdictKind.FAILED,
            f"{label}: {restarted} container restart(s) in {describe_duration(hours * 3600)} "
            f"(more than {config.max_restarts_per_hour:g} an hour), none OOMKilled.",
            counts,
        )
    restarts_note = f"{restarted} restart(s) since the last look" if restarted else "no restarts"
    if memory is not None and memory.peak_percent_of_limit is not None:
        peak = memory.peak_percent_of_limit
        if peak >= config.memory_high_percent:
            return verdict(
                follow_ups.VerdictKind.STILL_LEAKING,
                f"{label}: no OOM kill, but memory peaked at {peak:.0f} % of the limit "
                f"(threshold {config.memory_high_percent:g} %){_time_to_oom(memory)}.",
                counts,
            )
        if memory.rising:
            return verdict(
                follow_ups.VerdictKind.STILL_LEAKING,
                f"{label}: no OOM kill, memory at {peak:.0f} % of the limit and still rising"
                f"{f' ({memory.pattern})' if memory.pattern else ''}{_time_to_oom(memory)}.",
                counts,
            )
        return verdict(
            follow_ups.VerdictKind.STABLE,
            f"{label}: no OOM kills, {restarts_note}, peak {peak:.0f} % of the limit.",
            counts,
        )
    return verdict(follow_ups.VerdictKind.STABLE, f"{label}: no OOM kills, {restarts_note}.", counts)


def reading_from_analysis(analysis: analyses.Analysis) -> follow_ups.MemoryReading | None:
    """The Prometheus analysis (runbook Step 3) as a verdict's memory reading; None when it could not say
    (insufficient data: the verdict then rests on the pod state and says so)."""
    if analysis.pattern is analyses.Pattern.INSUFFICIENT_DATA:
        return None
    peak = None
    if analysis.peak_bytes is not None and analysis.limit_bytes:
        peak = 100.0 * analysis.peak_bytes / analysis.limit_bytes
    return follow_ups.MemoryReading(
        peak_percent_of_limit=peak,
        rising=analysis.pattern.is_leak,
        time_to_oom_seconds=analysis.time_to_oom_seconds if analysis.pattern.is_leak else None,
        pattern=analysis.pattern.value,
    )


def _time_to_oom(memory: follow_ups.MemoryReading) -> str:
    if memory.time_to_oom_seconds is None:
        return ""
    return f"; OOM expected in about {describe_duration(memory.time_to_oom_seconds)}"


def closing_summary(record: follow_ups.FollowUp) -> tuple[bool, str]:
    """After the last horizon: whether the incident can be closed, and the sentence that says so."""
    taken = [h for h in record.horizons if h.verdict is not None]
    if not taken:
        return False, "no verdict was taken"
    last = follow_ups.horizon_label(taken[-1].seconds)
    unstable = [
        h for h in taken if h.verdict is not None and h.verdict.kind is not follow_ups.VerdictKind.STABLE
    ]
    peaks = [
        h.verdict.peak_percent for h in taken if h.verdict is not None and h.verdict.peak_percent is not None
    ]
    memory = f"peak {max(peaks):.0f} % of limit" if peaks else "memory not measured (no Prometheus)"
    if unstable:
        names = ", ".join(
            f"{follow_ups.horizon_label(h.seconds)} {h.verdict.kind.value}" for h in unstable if h.verdict
        )
        return False, f"not closed: {len(unstable)} of {len(taken)} verdicts were not stable ({names})"
    return True, f"no OOM kills for {last}, {memory}"


def with_verdict(
    entries: Sequence[ledgers.LedgerEntry], *, incident: str, label: str, kind: follow_ups.VerdictKind
) -> list[ledgers.LedgerEntry] | None:
    """The ledger with the verdict added to the incident's entries; None when there is nothing to write
    (already recorded, or no entry of that incident left: aged out of the bounded ledger or edited away)."""
    found = False
    changed = False
    result = []
    for entry in entries:
        updated = entry
        if entry.occurrence == incident:
            found = True
            verdicts = dict(entry.verdicts or {})
            if verdicts.get(label) != kind.value:
                verdicts[label] = kind.value
                updated = entry.model_copy(update={"verdicts": verdicts})
                changed = True
        result.append(updated)
    return result if found and changed else None


# ---- restart schedules ---------------------------------------------------------------------------------------


def restart_interval(
    options: settings.ScheduledRestart, *, time_to_oom_seconds: float | None
) -> tuple[float, str]:
    """The interval between restarts and how it was chosen (said in the notice)."""
    if options.time_to_oom_fraction is None:
        return options.interval_seconds, f"every {describe_duration(options.interval_seconds)} (fixed)"
    if time_to_oom_seconds is None or time_to_oom_seconds <= 0:
        return (
            options.interval_seconds,
            f"every {describe_duration(options.interval_seconds)} (no time to OOM known: the fixed interval)",
        )
    derived = time_to_oom_seconds * options.time_to_oom_fraction
    clamped = min(max(derived, options.min_interval_seconds), options.max_interval_seconds)
    bound = ""
    if clamped != derived:
        bound = " raised to the floor" if clamped > derived else " lowered to the ceiling"
    return (
        clamped,
        f"every {describe_duration(clamped)} ({options.time_to_oom_fraction:g} × time to OOM "
        f"{describe_duration(time_to_oom_seconds)}{bound})",
    )


def images_of(workload: Body) -> dict[str, str]:
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
    workload: Body,
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
    schedule: follow_ups.Schedule, *, now: datetime.datetime, workload: Body
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
    schedule = _active(record.schedule)
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
    workload: Body,
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


def restart_patch(*, workload: Body, entry: ledgers.LedgerEntry) -> dict[str, Any]:
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


def is_scaled_to_zero(workload: Body) -> bool:
    return (workload.get("spec") or {}).get("replicas") == 0


def is_paused(workload: Body) -> bool:
    return bool((workload.get("spec") or {}).get("paused"))
