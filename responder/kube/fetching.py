"""Reading the live state a plan is made from.

Stage: kube edge (reads only). Walks from the alerted pod to its top-level workload (the decisions are
`responder.logic.resolving`'s); when the pod is gone, falls back to the alert's workload labels, then to the
workloads the pod's name points at (read one by one and confirmed), and only then to the ledgers of every
workload of the namespace. Reads what surrounds a workload: an HPA targeting it, a VPA's update mode (an API
found not served is remembered for a while, so that it costs one 404, not one per alert), a pod's recent
Events, rollout failures (by field selector, never every Event of a namespace). It never writes.

Workloads, ReplicaSets, HPAs, quotas and limit ranges are read from the watch-fed cache when the client has one
(`Kube.informers`, synced for that resource and namespace) and from the API server otherwise. What the cache
says is absent is asked again unless the caller was only guessing a name (a gone pod's candidate owners): an
object named by a fresher one (a pod's ReplicaSet) may simply not have reached the cache yet. An object a
write was refused on with 409 is read from the API server next (`Kube.conflicted`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import functools
import logging
import time
import urllib.parse
from collections.abc import Awaitable, Callable

from responder.kube import client, errors, informers
from responder.logic import resolving
from responder.models import actions, alerts, decisions, ledgers, mutations, settings, targets, times

__all__ = [
    "Located",
    "Unserved",
    "await_change",
    "find_hpa",
    "find_recorded",
    "find_vpa_update_mode",
    "has_no_quota_or_limits",
    "list_ledgers",
    "locate",
    "pod_events",
    "pod_path",
    "read_optional",
    "read_snapshot",
    "rollout_failures",
    "workload_path",
]

logger = logging.getLogger(__name__)

Body = client.Body

_COLLECTIONS: dict[targets.WorkloadKind, str] = {
    targets.WorkloadKind.DEPLOYMENT: "/apis/apps/v1/namespaces/{ns}/deployments",
    targets.WorkloadKind.STATEFUL_SET: "/apis/apps/v1/namespaces/{ns}/statefulsets",
    targets.WorkloadKind.DAEMON_SET: "/apis/apps/v1/namespaces/{ns}/daemonsets",
    targets.WorkloadKind.JOB: "/apis/batch/v1/namespaces/{ns}/jobs",
    targets.WorkloadKind.POD: "/api/v1/namespaces/{ns}/pods",
}
API_VERSIONS: dict[targets.WorkloadKind, str] = {
    targets.WorkloadKind.DEPLOYMENT: "apps/v1",
    targets.WorkloadKind.STATEFUL_SET: "apps/v1",
    targets.WorkloadKind.DAEMON_SET: "apps/v1",
    targets.WorkloadKind.JOB: "batch/v1",
    targets.WorkloadKind.POD: "v1",
}


def _q(name: str) -> str:
    # Names come from alert labels: quote them so a hostile label cannot change the path.
    return urllib.parse.quote(name, safe="")


def _field_value(value: str) -> str:
    # Backslash, comma and equals sign are escaped in a field selector's value (as fields.EscapeValue does).
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def collection_path(kind: targets.WorkloadKind, namespace: str) -> str:
    return _COLLECTIONS[kind].format(ns=_q(namespace))


def workload_path(target: targets.Target) -> str:
    return f"{collection_path(target.kind, target.namespace)}/{_q(target.name)}"


def pod_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{_q(namespace)}/pods/{_q(name)}"


def _cached(kube: client.Kube, path: str) -> tuple[bool, Body | None]:
    if kube.informers is None:
        return False, None
    if path in kube.conflicted:
        kube.conflicted.discard(path)
        return False, None
    return kube.informers.lookup(path)


async def read_optional(kube: client.Kube, path: str, *, trust_absence: bool = False) -> Body | None:
    """The object, or None when it does not exist: from the cache when it holds it, else from the API server.

    `trust_absence`: the cache's "no such object" is the answer (for names that are guesses); without it an
    object missing from the cache is asked for.
    """
    known, cached = _cached(kube, path)
    if known and cached is not None:
        return cached
    if known and trust_absence:
        return None
    try:
        return await kube.get(path)
    except errors.KubeNotFound:
        return None


async def _list(kube: client.Kube, resource: informers.Resource, namespace: str) -> list[Body]:
    cached = kube.informers.items(resource, namespace) if kube.informers is not None else None
    if cached is not None:
        return cached
    return await kube.list(resource.path(_q(namespace)))


async def await_change(
    kube: client.Kube, path: str, until: Callable[[Body | None], bool], *, timeout_seconds: float
) -> bool | None:
    """Wait on the watch until the object at `path` satisfies `until` (None: deleted): True when it did within
    `timeout_seconds`, False when not; None at once when no synced informer covers it (the caller polls)."""
    if kube.informers is None:
        return None
    return await kube.informers.wait_for(path, until, timeout_seconds=timeout_seconds)


def has_no_quota_or_limits(kube: client.Kube, namespace: str) -> bool:
    """Whether the cache shows the namespace without any ResourceQuota and LimitRange (False when it cannot
    tell): then nothing but the API's own validation could refuse a pod for its resources."""
    if kube.informers is None:
        return False
    quotas = kube.informers.items(informers.RESOURCE_QUOTAS, namespace)
    limits = kube.informers.items(informers.LIMIT_RANGES, namespace)
    return quotas is not None and limits is not None and not quotas and not limits


@dataclasses.dataclass(frozen=True, slots=True)
class Located:
    target: targets.Target | None
    pod: Body | None
    refusal: decisions.Decision | None = None
    workload: Body | None = None
    """The target as read while locating it (only when the pod was gone), else None."""


async def _walk(kube: client.Kube, namespace: str, step: resolving.Resolution) -> resolving.Resolution:
    if step.follow is None:
        return step
    path = f"/apis/apps/v1/namespaces/{_q(namespace)}/replicasets/{_q(step.follow.name)}"
    replica_set = await read_optional(kube, path)
    if replica_set is None:
        return resolving.Resolution(
            refusal=decisions.Decision.refuse(
                decisions.Reason.TARGET_NOT_FOUND,
                f"ReplicaSet {namespace}/{step.follow.name} no longer exists",
            )
        )
    return resolving.resolve_owner(
        namespace=namespace,
        kind="ReplicaSet",
        name=step.follow.name,
        owner=resolving.controller_of(replica_set),
    )


def _ledger(workload: Body) -> list[ledgers.LedgerEntry]:
    return ledgers.load(((workload.get("metadata") or {}).get("annotations") or {}).get(ledgers.ANNOTATION))


async def list_ledgers(
    kube: client.Kube, namespace: str
) -> list[tuple[targets.Target, list[ledgers.LedgerEntry]]]:
    """Every templated workload of the namespace that carries a ledger (three LISTs: the last resort)."""
    found: list[tuple[targets.Target, list[ledgers.LedgerEntry]]] = []
    for kind, resource in (
        (targets.WorkloadKind.DEPLOYMENT, informers.DEPLOYMENTS),
        (targets.WorkloadKind.STATEFUL_SET, informers.STATEFUL_SETS),
        (targets.WorkloadKind.DAEMON_SET, informers.DAEMON_SETS),
    ):
        for item in await _list(kube, resource, namespace):
            metadata = item.get("metadata") or {}
            raw = (metadata.get("annotations") or {}).get(ledgers.ANNOTATION)
            if raw:
                found.append((targets.Target(kind, namespace, str(metadata.get("name"))), ledgers.load(raw)))
    return found


async def find_recorded(
    kube: client.Kube, *, namespace: str, pod: str | None, occurrence: str
) -> tuple[targets.Target, list[ledgers.LedgerEntry]] | None:
    """The workload whose ledger records `occurrence`, and that ledger: the workloads the pod's name points
    at first, every workload of the namespace only when none of them does."""
    for candidate in resolving.owners_by_pod_name(namespace, pod) if pod else ():
        workload = await read_optional(kube, workload_path(candidate.target), trust_absence=True)
        entries = _ledger(workload) if workload is not None else []
        if resolving.records(entries, occurrence):
            return candidate.target, entries
    for target, entries in await list_ledgers(kube, namespace):
        if resolving.records(entries, occurrence):
            return target, entries
    return None


async def _confirmed(
    kube: client.Kube, namespace: str, pod: str | None, occurrence: str
) -> tuple[targets.Target, Body] | None:
    """The workload the gone pod's name points at that is proven to be its own: its ledger records the
    occurrence, or (a Deployment) the ReplicaSet the pod's name comes from exists and is controlled by it.
    Candidates are read one at a time, most likely first, and the first proven one ends the search."""
    for candidate in resolving.owners_by_pod_name(namespace, pod) if pod else ():
        workload = await read_optional(kube, workload_path(candidate.target), trust_absence=True)
        if workload is None:
            continue
        if resolving.records(_ledger(workload), occurrence):
            return candidate.target, workload
        if candidate.replica_set is None:
            continue
        path = f"/apis/apps/v1/namespaces/{_q(namespace)}/replicasets/{_q(candidate.replica_set)}"
        replica_set = await read_optional(kube, path)
        owner = resolving.controller_of(replica_set) if replica_set is not None else None
        if owner is not None and owner.kind == "Deployment" and owner.name == candidate.target.name:
            return candidate.target, workload
    return None


async def locate(
    kube: client.Kube,
    *,
    event: alerts.AlertEvent,
    names: settings.AlertsSettings,
    read_pod: Callable[[str], Awaitable[Body | None]] | None = None,
) -> Located:
    """The alert's top-level workload and its pod (None when gone), or why there is none.

    `read_pod(path)` reads the alerted pod (default: from the API server)."""
    namespace = event.namespace
    if not namespace:
        return Located(
            None,
            None,
            decisions.Decision.refuse(decisions.Reason.MISSING_LABELS, "the alert names no namespace"),
        )
    if read_pod is None:
        read_pod = functools.partial(read_optional, kube)
    pod = await read_pod(pod_path(namespace, event.pod)) if event.pod else None
    if pod is not None:
        step = resolving.resolve_owner(
            namespace=namespace, kind="Pod", name=str(event.pod), owner=resolving.controller_of(pod)
        )
        step = await _walk(kube, namespace, step)
        return Located(step.target, pod, step.refusal)
    # The pod is gone (a rollout replaced it, or it was evicted): the alert's workload labels, then the
    # workloads its name points at, then the ledgers, which know every occurrence the service answered.
    owner = resolving.owner_from_labels(event, names)
    if owner is not None:
        if owner.kind.lower() == "replicaset":
            step = await _walk(kube, namespace, resolving.Resolution(follow=owner))
        else:
            step = resolving.resolve_owner(namespace=namespace, kind=owner.kind, name=owner.name, owner=None)
        if step.target is not None and step.target.kind is not targets.WorkloadKind.POD:
            return Located(step.target, None)
    confirmed = await _confirmed(kube, namespace, event.pod, event.occurrence_id)
    if confirmed is not None:
        return Located(confirmed[0], None, workload=confirmed[1])
    target = resolving.find_by_occurrence(await list_ledgers(kube, namespace), event.occurrence_id)
    if target is not None:
        return Located(target, None)
    return Located(
        None,
        None,
        decisions.Decision.refuse(
            decisions.Reason.TARGET_NOT_FOUND,
            f"pod {namespace}/{event.pod} is gone and neither the alert's labels "
            f"({names.workload_kind_label}, {names.workload_name_label}) nor any ledger name its workload",
        ),
    )


async def find_hpa(kube: client.Kube, target: targets.Target) -> Body | None:
    """The HorizontalPodAutoscaler whose scaleTargetRef is the workload, if any."""
    for hpa in await _list(kube, informers.HPAS, target.namespace):
        ref = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
        if ref.get("kind") == target.kind.value and ref.get("name") == target.name:
            return hpa
    return None


class Unserved:
    """APIs found not served (404 on a list), remembered for `ttl_seconds`: asking again for every alert
    would cost a request each time for an answer that changes only when someone installs a CRD.

    Until an API has answered once, callers take turns (`first_answer`): a storm's first hundred alerts would
    otherwise all ask at once, before the first 404 is back.
    """

    def __init__(
        self, *, ttl_seconds: float = 300.0, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self._monotonic = monotonic
        self._until: dict[str, float] = {}
        self._answered: set[str] = set()
        self._locks: dict[str, asyncio.Lock] = {}

    def known(self, api: str) -> bool:
        until = self._until.get(api)
        if until is None:
            return False
        if self._monotonic() >= until:
            del self._until[api]
            self._answered.discard(api)
            return False
        return True

    def remember(self, api: str) -> None:
        self._until[api] = self._monotonic() + self.ttl_seconds
        self._answered.add(api)

    def answered(self, api: str) -> None:
        """The API answered (served or not): callers need not take turns any more."""
        self._answered.add(api)

    def has_answered(self, api: str) -> bool:
        return api in self._answered

    def first_answer(self, api: str) -> asyncio.Lock:
        return self._locks.setdefault(api, asyncio.Lock())


_VPA_API = "autoscaling.k8s.io/v1/verticalpodautoscalers"


async def find_vpa_update_mode(
    kube: client.Kube, target: targets.Target, *, unserved: Unserved | None = None
) -> str | None:
    """updateMode of a VerticalPodAutoscaler targeting the workload; None without one (or without the CRD).

    With `unserved`, a 404 (the VPA API is not served) is remembered there and not asked again meanwhile.
    """
    if unserved is None:
        return await _vpa_mode(kube, target, None)
    if not unserved.known(_VPA_API) and not unserved.has_answered(_VPA_API):
        async with unserved.first_answer(_VPA_API):
            if unserved.known(_VPA_API):
                return None
            return await _vpa_mode(kube, target, unserved)
    if unserved.known(_VPA_API):
        return None
    return await _vpa_mode(kube, target, unserved)


async def _vpa_mode(kube: client.Kube, target: targets.Target, unserved: Unserved | None) -> str | None:
    path = f"/apis/autoscaling.k8s.io/v1/namespaces/{_q(target.namespace)}/verticalpodautoscalers"
    try:
        items = await kube.list(path)
    except errors.KubeNotFound:
        if unserved is not None:
            unserved.remember(_VPA_API)
        return None  # the VPA CRD is not installed: nothing can manage the workload's memory
    except errors.KubeForbidden as e:
        logger.warning("cannot list VerticalPodAutoscalers, assuming none: %s", e.message)
        return None
    if unserved is not None:
        unserved.answered(_VPA_API)
    for vpa in items:
        spec = vpa.get("spec") or {}
        ref = spec.get("targetRef") or {}
        if ref.get("kind") == target.kind.value and ref.get("name") == target.name:
            # The VPA's default updateMode is Auto (Recreate in older releases).
            return str((spec.get("updatePolicy") or {}).get("updateMode") or "Auto")
    return None


def _event_time(event: Body) -> str:
    return str(
        event.get("lastTimestamp")
        or event.get("eventTime")
        or (event.get("metadata") or {}).get("creationTimestamp")
        or ""
    )


async def pod_events(kube: client.Kube, namespace: str, pod: str, *, limit: int) -> list[Body]:
    """The pod's most recent core/v1 Events (what `kubectl describe pod` shows), oldest first."""
    if limit <= 0:
        return []
    items = await kube.list(
        f"/api/v1/namespaces/{_q(namespace)}/events",
        query={"fieldSelector": f"involvedObject.kind=Pod,involvedObject.name={_field_value(pod)}"},
    )
    return sorted(items, key=_event_time)[-limit:]


async def rollout_failures(
    kube: client.Kube, target: targets.Target, *, since: datetime.datetime
) -> list[str]:
    """Messages of FailedCreate Events on the workload (a StatefulSet or a DaemonSet) since `since`.

    ResourceQuota and LimitRange refuse pods, not workloads: the controller reports it only here. The API
    server filters by field selector (core/v1 Events select on `involvedObject.*` and `reason`), so this
    reads the few Events that matter, not every Event of the namespace.
    """
    selector = ",".join(
        (
            f"involvedObject.kind={_field_value(target.kind.value)}",
            f"involvedObject.name={_field_value(target.name)}",
            "reason=FailedCreate",
        )
    )
    items = await kube.list(
        f"/api/v1/namespaces/{_q(target.namespace)}/events", query={"fieldSelector": selector}
    )
    messages: list[str] = []
    for event in sorted(items, key=_event_time):
        when = times.parse(_event_time(event))
        if when is None or when >= since.replace(microsecond=0):
            messages.append(str(event.get("message") or "FailedCreate"))
    return messages


async def read_snapshot(
    kube: client.Kube,
    *,
    target: targets.Target,
    pod: Body | None,
    workload: Body | None,
    playbook: settings.Playbook,
    unserved: Unserved,
) -> mutations.WorkloadSnapshot | None:
    """Everything a plan is made from (None when the workload is gone); `workload` when it was just read.

    Only what a playbook action will look at is read: an HPA decides how scale_out writes, a VPA whether
    raise_memory may act at all.
    """
    if workload is None:
        workload = await read_optional(kube, workload_path(target))
    if workload is None:
        return None
    specs = {spec.action: spec for spec in playbook.actions}
    hpa = None
    if (
        settings.Action.SCALE_OUT in specs
        and target.kind in actions.traits_of(settings.Action.SCALE_OUT).kinds
    ):
        hpa = await find_hpa(kube, target)
    vpa_mode = None
    raise_memory = specs.get(settings.Action.RAISE_MEMORY)
    if (
        raise_memory is not None
        and raise_memory.raise_memory is not None
        and raise_memory.raise_memory.check_vpa
    ):
        vpa_mode = await find_vpa_update_mode(kube, target, unserved=unserved)
    return mutations.WorkloadSnapshot(
        target=target,
        workload=workload,
        pod=pod,
        ledger=tuple(_ledger(workload)),
        hpa=hpa,
        vpa_update_mode=vpa_mode,
    )
