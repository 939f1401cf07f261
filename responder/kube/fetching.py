"""Reading the live state a plan is made from.

Stage: kube edge (reads only). Walks from the alerted pod to its top-level workload (the decisions are
`responder.logic.resolving`'s), falls back to the alert's workload labels and to the ledgers on the
namespace's workloads when the pod is gone, and reads what surrounds a workload: an HPA targeting it, a VPA's
update mode, a pod's recent Events, rollout failures. It never writes.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

from responder.kube import client, errors
from responder.logic import resolving
from responder.models import alerts, decisions, ledgers, settings, targets

__all__ = [
    "Located",
    "find_hpa",
    "find_vpa_update_mode",
    "list_ledgers",
    "locate",
    "owned_replica_sets",
    "pod_events",
    "pod_path",
    "read_optional",
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


def collection_path(kind: targets.WorkloadKind, namespace: str) -> str:
    return _COLLECTIONS[kind].format(ns=_q(namespace))


def workload_path(target: targets.Target) -> str:
    return f"{collection_path(target.kind, target.namespace)}/{_q(target.name)}"


def pod_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{_q(namespace)}/pods/{_q(name)}"


async def read_optional(kube: client.Kube, path: str) -> Body | None:
    """The object, or None when it does not exist."""
    try:
        return await kube.get(path)
    except errors.KubeNotFound:
        return None


@dataclasses.dataclass(frozen=True, slots=True)
class Located:
    target: targets.Target | None
    pod: Body | None
    refusal: decisions.Decision | None = None


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


async def list_ledgers(
    kube: client.Kube, namespace: str
) -> list[tuple[targets.Target, list[ledgers.LedgerEntry]]]:
    """Every templated workload of the namespace that carries a ledger."""
    found: list[tuple[targets.Target, list[ledgers.LedgerEntry]]] = []
    for kind in (
        targets.WorkloadKind.DEPLOYMENT,
        targets.WorkloadKind.STATEFUL_SET,
        targets.WorkloadKind.DAEMON_SET,
    ):
        for item in await kube.list(collection_path(kind, namespace)):
            metadata = item.get("metadata") or {}
            raw = (metadata.get("annotations") or {}).get(ledgers.ANNOTATION)
            if raw:
                found.append((targets.Target(kind, namespace, str(metadata.get("name"))), ledgers.load(raw)))
    return found


async def locate(kube: client.Kube, *, event: alerts.AlertEvent, names: settings.AlertsSettings) -> Located:
    """The alert's top-level workload and its pod (None when gone), or why there is none."""
    namespace = event.namespace
    if not namespace:
        return Located(
            None,
            None,
            decisions.Decision.refuse(decisions.Reason.MISSING_LABELS, "the alert names no namespace"),
        )
    pod = await read_optional(kube, pod_path(namespace, event.pod)) if event.pod else None
    if pod is not None:
        step = resolving.resolve_owner(
            namespace=namespace, kind="Pod", name=str(event.pod), owner=resolving.controller_of(pod)
        )
        step = await _walk(kube, namespace, step)
        return Located(step.target, pod, step.refusal)
    # The pod is gone (a rollout replaced it, or it was evicted): the alert's workload labels, then the
    # ledgers, which know every occurrence the service answered.
    owner = resolving.owner_from_labels(event, names)
    if owner is not None:
        if owner.kind.lower() == "replicaset":
            step = await _walk(kube, namespace, resolving.Resolution(follow=owner))
        else:
            step = resolving.resolve_owner(namespace=namespace, kind=owner.kind, name=owner.name, owner=None)
        if step.target is not None and step.target.kind is not targets.WorkloadKind.POD:
            return Located(step.target, None)
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
    path = f"/apis/autoscaling/v2/namespaces/{_q(target.namespace)}/horizontalpodautoscalers"
    for hpa in await kube.list(path):
        ref = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
        if ref.get("kind") == target.kind.value and ref.get("name") == target.name:
            return hpa
    return None


async def find_vpa_update_mode(kube: client.Kube, target: targets.Target) -> str | None:
    """updateMode of a VerticalPodAutoscaler targeting the workload; None without one (or without the CRD)."""
    path = f"/apis/autoscaling.k8s.io/v1/namespaces/{_q(target.namespace)}/verticalpodautoscalers"
    try:
        items = await kube.list(path)
    except errors.KubeNotFound:
        return None  # the VPA CRD is not installed: nothing can manage the workload's memory
    except errors.KubeForbidden as e:
        logger.warning("cannot list VerticalPodAutoscalers, assuming none: %s", e.message)
        return None
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
        query={"fieldSelector": f"involvedObject.kind=Pod,involvedObject.name={pod}"},
    )
    return sorted(items, key=_event_time)[-limit:]


def _parse(raw: Any) -> datetime.datetime | None:
    if not isinstance(raw, str) or not raw:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


async def rollout_failures(
    kube: client.Kube, namespace: str, *, names: Sequence[str], since: datetime.datetime
) -> list[str]:
    """Messages of FailedCreate Events on the given objects (a ReplicaSet or a StatefulSet) since `since`.

    ResourceQuota and LimitRange refuse pods, not workloads: the controller reports it only here.
    """
    items = await kube.list(
        f"/api/v1/namespaces/{_q(namespace)}/events", query={"fieldSelector": "reason=FailedCreate"}
    )
    wanted = set(names)
    messages: list[str] = []
    for event in sorted(items, key=_event_time):
        involved = event.get("involvedObject") or {}
        when = _parse(_event_time(event))
        if involved.get("name") in wanted and (when is None or when >= since.replace(microsecond=0)):
            messages.append(str(event.get("message") or "FailedCreate"))
    return messages


async def owned_replica_sets(kube: client.Kube, deployment: Mapping[str, Any]) -> list[Body]:
    """The ReplicaSets controlled by a Deployment (matched by owner uid)."""
    metadata = deployment.get("metadata") or {}
    uid = metadata.get("uid")
    items = await kube.list(f"/apis/apps/v1/namespaces/{_q(str(metadata.get('namespace')))}/replicasets")
    return [
        rs
        for rs in items
        if any(
            ref.get("uid") == uid and ref.get("controller")
            for ref in (rs.get("metadata") or {}).get("ownerReferences") or []
        )
    ]
