"""Resolving an alert to its top-level workload, and checking that the alert is still true. Pure.

Stage: plan (first half). A purely computational module with no side-effects: it reads object bodies
(the API's camelCase JSON, as dicts) that `responder.kube.fetching` fetched, and decides. It never calls
the API, never reads the clock (time is passed in) and never raises for a cluster condition: a cluster
condition is a `decisions.Decision` with a reason.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from responder.models import actions, alerts, decisions, ledgers, settings, targets, times

__all__ = [
    "Kill",
    "NameCandidate",
    "OwnerRef",
    "Resolution",
    "Termination",
    "check_still_true",
    "controller_of",
    "find_by_occurrence",
    "last_action_at",
    "last_kill",
    "last_termination",
    "likely_target",
    "owner_from_labels",
    "owners_by_pod_name",
    "records",
    "resolve_owner",
    "thread_of",
]

Body = Mapping[str, Any]


_TOP_LEVEL: dict[str, targets.WorkloadKind] = {
    "deployment": targets.WorkloadKind.DEPLOYMENT,
    "statefulset": targets.WorkloadKind.STATEFUL_SET,
    "daemonset": targets.WorkloadKind.DAEMON_SET,
    "job": targets.WorkloadKind.JOB,
    "pod": targets.WorkloadKind.POD,
}


@dataclasses.dataclass(frozen=True, slots=True)
class OwnerRef:
    kind: str
    name: str


@dataclasses.dataclass(frozen=True, slots=True)
class Resolution:
    """One step of walking the owner chain: either the target is known, or `follow` must be read next."""

    target: targets.Target | None = None
    follow: OwnerRef | None = None
    refusal: decisions.Decision | None = None


def controller_of(body: Body) -> OwnerRef | None:
    """The owner reference marked `controller: true` (the one that manages the object), if any."""
    for ref in body.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") and ref.get("name"):
            return OwnerRef(kind=str(ref["kind"]), name=str(ref["name"]))
    return None


def resolve_owner(*, namespace: str, kind: str, name: str, owner: OwnerRef | None) -> Resolution:
    """Decide what an object of `kind`/`name` (with controller `owner`) means as a mitigation target.

    Pod → ReplicaSet → Deployment; StatefulSet, DaemonSet and Job own their pods directly; a pod without a
    controller is a bare Pod. A CronJob's Job stays the target: every run is a new Job, and a CronJob's
    template is not what an incident is about. Cooldowns are keyed on the top-level workload, never on the
    ReplicaSet, which changes on every rollout.
    """
    lowered = kind.lower()
    if lowered == "pod":
        if owner is None:
            return Resolution(target=targets.Target(targets.WorkloadKind.POD, namespace, name))
        owner_kind = owner.kind.lower()
        if owner_kind == "replicaset":
            return Resolution(follow=owner)
        if owner_kind in ("statefulset", "daemonset", "job"):
            return Resolution(target=targets.Target(_TOP_LEVEL[owner_kind], namespace, owner.name))
        return Resolution(
            refusal=decisions.Decision.refuse(
                decisions.Reason.TARGET_NOT_FOUND,
                f"the pod is controlled by a {owner.kind} ({owner.name}), which the service does not handle",
            )
        )
    if lowered == "replicaset":
        if owner is not None and owner.kind.lower() == "deployment":
            return Resolution(target=targets.Target(targets.WorkloadKind.DEPLOYMENT, namespace, owner.name))
        return Resolution(
            refusal=decisions.Decision.refuse(
                decisions.Reason.TARGET_NOT_FOUND,
                f"ReplicaSet {namespace}/{name} is not managed by a Deployment; bare ReplicaSets are not handled",
            )
        )
    if lowered in _TOP_LEVEL:
        return Resolution(target=targets.Target(_TOP_LEVEL[lowered], namespace, name))
    return Resolution(
        refusal=decisions.Decision.refuse(
            decisions.Reason.TARGET_NOT_FOUND,
            f"{kind} {namespace}/{name} is not a workload kind the service handles",
        )
    )


def owner_from_labels(event: alerts.AlertEvent, names: settings.AlertsSettings) -> OwnerRef | None:
    """The workload named on the alert itself (kube-state-metrics joins), for when the pod is gone."""
    kind = event.labels.get(names.workload_kind_label)
    name = event.labels.get(names.workload_name_label)
    if not kind or not name:
        return None
    return OwnerRef(kind=kind, name=name)


def likely_target(event: alerts.AlertEvent, names: settings.AlertsSettings) -> targets.Target | None:
    """The workload the alert is most likely about, before anything is read: the one its owner labels name,
    else the first its pod's name suggests. Pure. A guess, good for starting a slow read early (the memory
    history); what is acted on is the workload the pod's owners lead to."""
    if not event.namespace:
        return None
    owner = owner_from_labels(event, names)
    if owner is not None:
        step = resolve_owner(namespace=event.namespace, kind=owner.kind, name=owner.name, owner=None)
        if step.target is not None and step.target.kind is not targets.WorkloadKind.POD:
            return step.target
    if event.pod:
        candidates = owners_by_pod_name(event.namespace, event.pod)
        if candidates:
            return candidates[0].target
    return None


@dataclasses.dataclass(frozen=True, slots=True)
class NameCandidate:
    """A workload a gone pod may have belonged to, judged from the pod's name alone (to be confirmed)."""

    target: targets.Target
    replica_set: str | None = None
    """For a Deployment: the ReplicaSet the pod's name says it came from, whose controller confirms it."""


def _segments(name: str) -> list[str]:
    return name.split("-")


def owners_by_pod_name(namespace: str, pod: str) -> tuple[NameCandidate, ...]:
    """The workloads whose controllers would have named a pod `pod`, most likely first. Pure.

    A StatefulSet names its pods `<statefulset>-<ordinal>`; a Deployment's ReplicaSet `<deployment>-<hash>`
    names them `<replicaset>-<suffix>`; a DaemonSet `<daemonset>-<suffix>`. Names alone prove nothing (a
    bare pod may be called anything): the caller confirms each candidate on the live objects.
    """
    parts = _segments(pod)
    found: list[NameCandidate] = []
    if len(parts) >= 2 and parts[-1].isdigit() and parts[-2]:
        found.append(
            NameCandidate(targets.Target(targets.WorkloadKind.STATEFUL_SET, namespace, "-".join(parts[:-1])))
        )
    if len(parts) >= 3 and all(parts[-2:]) and parts[-3]:
        found.append(
            NameCandidate(
                targets.Target(targets.WorkloadKind.DEPLOYMENT, namespace, "-".join(parts[:-2])),
                replica_set="-".join(parts[:-1]),
            )
        )
    if len(parts) >= 2 and parts[-1] and not parts[-1].isdigit() and parts[-2]:
        found.append(
            NameCandidate(targets.Target(targets.WorkloadKind.DAEMON_SET, namespace, "-".join(parts[:-1])))
        )
    return tuple(found)


def records(entries: Iterable[ledgers.LedgerEntry], occurrence: str) -> bool:
    """Does the ledger record this alert occurrence?"""
    return any(entry.occurrence == occurrence for entry in entries)


def find_by_occurrence(
    candidates: Iterable[tuple[targets.Target, Sequence[ledgers.LedgerEntry]]], occurrence: str
) -> targets.Target | None:
    """The workload whose ledger already records this alert occurrence.

    After a memory raise the rollout replaces the alerted pod, so a repeat or a resolve of the same
    occurrence names a pod that no longer exists: the ledger on the workload still knows it.
    """
    for target, entries in candidates:
        if any(entry.occurrence == occurrence for entry in entries):
            return target
    return None


def thread_of(entries: Sequence[ledgers.LedgerEntry], occurrence: str) -> str | None:
    """The notifier thread of an incident, from the newest ledger entry that carries one."""
    for entry in reversed(entries):
        if entry.thread and entry.occurrence == occurrence:
            return entry.thread
    return None


def last_action_at(entries: Sequence[ledgers.LedgerEntry]) -> datetime.datetime | None:
    mutating = actions.mutating()
    times = [entry.at for entry in entries if entry.action in mutating]
    return max(times) if times else None


@dataclasses.dataclass(frozen=True, slots=True)
class Kill:
    container: str
    finished_at: datetime.datetime
    restart_count: int


def last_kill(pod: Body, container: str | None) -> Kill | None:
    """The newest OOMKilled termination of `container` (or of any container) reported in the pod's status.

    The kubelet keeps the previous termination in `lastState.terminated` after a restart, and in
    `state.terminated` while the container has not been restarted yet (CrashLoopBackOff waits in between).
    """
    newest: Kill | None = None
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if container is not None and status.get("name") != container:
            continue
        for holder in (status.get("lastState") or {}, status.get("state") or {}):
            terminated = holder.get("terminated") or {}
            if terminated.get("reason") != "OOMKilled":
                continue
            finished = times.parse(terminated.get("finishedAt"))
            if finished is None:
                continue
            kill = Kill(str(status.get("name")), finished, int(status.get("restartCount") or 0))
            if newest is None or kill.finished_at > newest.finished_at:
                newest = kill
    return newest


@dataclasses.dataclass(frozen=True, slots=True)
class Termination:
    container: str
    reason: str
    exit_code: int | None
    finished_at: datetime.datetime | None


def last_termination(pod: Body, container: str | None) -> Termination | None:
    """The newest termination, whatever its reason, of `container` (or of any container) in the pod's status."""
    newest: Termination | None = None
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if container is not None and status.get("name") != container:
            continue
        for holder in (status.get("lastState") or {}, status.get("state") or {}):
            terminated = holder.get("terminated") or {}
            if not terminated:
                continue
            code = terminated.get("exitCode")
            found = Termination(
                str(status.get("name")),
                str(terminated.get("reason") or "unknown"),
                code if isinstance(code, int) else None,
                times.parse(terminated.get("finishedAt")),
            )
            if newest is None or (found.finished_at or _EPOCH) > (newest.finished_at or _EPOCH):
                newest = found
    return newest


_EPOCH = datetime.datetime.min.replace(tzinfo=datetime.UTC)


def check_still_true(
    *,
    event: alerts.AlertEvent,
    pod: Body | None,
    entries: Sequence[ledgers.LedgerEntry],
) -> decisions.Decision:
    """Is the alert still true on the live objects, and not already answered? Pure.

    OOMKilled: Alertmanager keeps an alert built on `last_terminated_reason` firing after a single kill, and
    repeats it every repeat_interval, so only a kill that finished after the last action on this workload
    counts. A new kill is acted on even for an occurrence already in the ledger (the raise was not enough);
    with no new kill, an occurrence already in the ledger was handled (by this or another replica).
    PodMemoryHigh: the hot pod must still exist. Other alerts: the same occurrence is answered once.
    """
    handled = any(entry.occurrence == event.occurrence_id for entry in entries)
    if event.kind is settings.AlertKind.OOM_KILLED:
        if pod is None:
            if handled:
                return decisions.Decision.refuse(
                    decisions.Reason.ALREADY_HANDLED, "the ledger records this alert"
                )
            return decisions.Decision.refuse(
                decisions.Reason.POD_GONE, f"pod {event.namespace}/{event.pod} no longer exists"
            )
        kill = last_kill(pod, event.container)
        if kill is None:
            if handled:
                return decisions.Decision.refuse(
                    decisions.Reason.ALREADY_HANDLED, "the ledger records this alert"
                )
            return decisions.Decision.refuse(
                decisions.Reason.NO_NEW_KILL, "the pod's status reports no OOMKilled termination"
            )
        since = last_action_at(entries)
        if since is not None and kill.finished_at <= since:
            if handled:
                return decisions.Decision.refuse(
                    decisions.Reason.ALREADY_HANDLED,
                    f"the kill at {kill.finished_at.isoformat()} was answered at {since.isoformat()}",
                )
            return decisions.Decision.refuse(
                decisions.Reason.NO_NEW_KILL,
                f"the last kill ({kill.finished_at.isoformat()}) is older than the last action "
                f"({since.isoformat()})",
            )
        return decisions.Decision.allow(
            f"container {kill.container} OOMKilled at {kill.finished_at.isoformat()} "
            f"(restart {kill.restart_count})"
        )
    if handled:
        return decisions.Decision.refuse(decisions.Reason.ALREADY_HANDLED, "the ledger records this alert")
    if event.kind is settings.AlertKind.MEMORY_HIGH and pod is None:
        return decisions.Decision.refuse(
            decisions.Reason.POD_GONE, f"pod {event.namespace}/{event.pod} no longer exists"
        )
    return decisions.Decision.allow()
