"""A follow-up's verdict at a horizon, and the closing of the incident from its verdicts. Pure.

Stage: follow (runbook RB-010 Step 6). Judging follows the runbook's success criteria: no OOM kills since
the mitigation, restart count not increasing (at most `max_restarts_per_hour` since the last look), memory
under `memory_high_percent` of the limit and not rising. The first two come from the pods' status; the
last two only from Prometheus, and a verdict without it says so. Nothing here does I/O, reads the clock or
touches a restart schedule (`responder.logic.schedules`).
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from responder.logic import following, resolving
from responder.models import analyses, follow_ups, ledgers, settings

__all__ = ["closing_summary", "judge", "oom_kills_since", "reading_from_analysis", "with_verdict"]


def oom_kills_since(
    pods: Sequence[following.Body], *, container: str | None, since: datetime.datetime
) -> list[resolving.Kill]:
    """The OOM kills the pods' status reports as finished after `since` (newest per container and pod)."""
    kills = []
    for pod in pods:
        kill = resolving.last_kill(pod, container)
        if kill is not None and kill.finished_at > since:
            kills.append(kill)
    return sorted(kills, key=lambda kill: kill.finished_at)


def judge(
    *,
    record: follow_ups.FollowUp,
    horizon: follow_ups.Horizon,
    workload: following.Body | None,
    pods: Sequence[following.Body],
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
    notes = [following.describe_late(late, late_after_seconds=config.late_after_seconds)]
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
    counts = following.restart_counts(pods, container=record.container)
    if kills:
        newest = kills[-1]
        return verdict(
            follow_ups.VerdictKind.FAILED,
            f"{label}: OOMKilled again ({len(kills)} container(s); newest {newest.container} at "
            f"{newest.finished_at.isoformat()}), {following.describe_duration((newest.finished_at - record.acted_at).total_seconds())} "
            f"after the mitigation.",
            counts,
        )
    # Restarts since the last look: a pod created since counts from zero; an older one whose count was not
    # taken then (its baseline is not known) counts from this look on.
    previous = [h.verdict.at for h in record.horizons if h.verdict is not None]
    looked_at = max(previous) if previous else record.acted_at
    created = {
        following.pod_key(pod): following.parse_time((pod.get("metadata") or {}).get("creationTimestamp"))
        for pod in pods
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
            f"{label}: {restarted} container restart(s) in {following.describe_duration(hours * 3600)} "
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
    return f"; OOM expected in about {following.describe_duration(memory.time_to_oom_seconds)}"


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
