"""Every Kubernetes API permission the service needs, per action: the one list RBAC is rendered from.

Stage: kube edge (facts only). `oom-responder doctor` checks each entry with a SelfSubjectAccessReview; the
Helm chart renders its Role/ClusterRole from the same facts and tests that each rule is needed. Change a
call in `responder.kube` and this list together. No I/O here.
"""

from __future__ import annotations

import dataclasses

from responder.models import settings

__all__ = ["Permission", "needed"]


@dataclasses.dataclass(frozen=True, slots=True, order=True)
class Permission:
    group: str
    """API group ("" for the core group)."""
    resource: str
    subresource: str
    verb: str
    why: str = dataclasses.field(compare=False)
    own_namespace: bool = False
    """Needed only in the service's own namespace (the guardrail state object)."""


_WORKLOADS = (("apps", "deployments"), ("apps", "statefulsets"), ("apps", "daemonsets"))

_ALWAYS: tuple[Permission, ...] = (
    Permission("", "pods", "", "get", "read the alerted pod and its status"),
    Permission("apps", "replicasets", "", "get", "follow a pod's owner to its Deployment"),
    *(Permission(g, r, "", "get", "read the top-level workload and its ledger") for g, r in _WORKLOADS),
    *(Permission(g, r, "", "list", "find a gone pod's workload by the ledger") for g, r in _WORKLOADS),
    Permission("batch", "jobs", "", "get", "read a Job owning the alerted pod"),
    Permission("events.k8s.io", "events", "", "create", "record every action and refusal as an Event"),
    Permission("", "configmaps", "", "get", "read the guardrail state", own_namespace=True),
    Permission("", "configmaps", "", "create", "create the guardrail state", own_namespace=True),
    Permission("", "configmaps", "", "update", "compare-and-swap the guardrail state", own_namespace=True),
)

_VERIFY: tuple[Permission, ...] = (
    Permission(
        "", "events", "", "list", "find FailedCreate Events of a StatefulSet's or DaemonSet's rollout"
    ),
)


def _for_action(spec: settings.ActionSpec) -> list[Permission]:
    action = spec.action
    if action is settings.Action.RAISE_MEMORY:
        options = spec.raise_memory
        found = [
            *(Permission(g, r, "", "patch", "write the new limit with the ledger") for g, r in _WORKLOADS),
            Permission("", "pods", "", "create", "dry-run the new pod against ResourceQuota and LimitRange"),
            *_VERIFY,
        ]
        if options is not None and options.check_vpa:
            found.append(
                Permission("autoscaling.k8s.io", "verticalpodautoscalers", "", "list", "do not fight a VPA")
            )
        if options is not None and options.resize_in_place:
            found.append(Permission("", "pods", "resize", "patch", "resize the running pod in place"))
        return found
    if action is settings.Action.SCALE_OUT:
        return [
            Permission("apps", "deployments", "", "patch", "write spec.replicas with the ledger"),
            Permission("apps", "statefulsets", "", "patch", "write spec.replicas with the ledger"),
            Permission("autoscaling", "horizontalpodautoscalers", "", "list", "find an HPA on the workload"),
            Permission("autoscaling", "horizontalpodautoscalers", "", "patch", "raise the HPA's minReplicas"),
            *_VERIFY,
        ]
    if action is settings.Action.EVICT_POD:
        return [
            Permission("", "pods", "eviction", "create", "evict the hot pod (PDBs honoured)"),
            *(Permission(g, r, "", "patch", "record the eviction in the ledger") for g, r in _WORKLOADS),
            # A Job's pod: the Job is the top-level workload and carries the ledger entry.
            Permission("batch", "jobs", "", "patch", "record the eviction in the Job's ledger"),
        ]
    if action is settings.Action.ROLLOUT_RESTART:
        return [
            *(Permission(g, r, "", "patch", "stamp restartedAt with the ledger") for g, r in _WORKLOADS),
            *_VERIFY,
        ]
    if action is settings.Action.CAPTURE_DIAGNOSTICS:
        return [Permission("", "events", "", "list", "read the pod's recent Events")]
    return []


def needed(config: settings.Settings) -> list[Permission]:
    """The permissions the configured playbooks need, without duplicates, in a stable order."""
    found: dict[tuple[str, str, str, str, bool], Permission] = {}
    for permission in _ALWAYS:
        found.setdefault(
            (
                permission.group,
                permission.resource,
                permission.subresource,
                permission.verb,
                permission.own_namespace,
            ),
            permission,
        )
    for playbook in config.playbooks:
        for spec in playbook.actions:
            for permission in _for_action(spec):
                key = (
                    permission.group,
                    permission.resource,
                    permission.subresource,
                    permission.verb,
                    permission.own_namespace,
                )
                found.setdefault(key, permission)
    return sorted(found.values())
