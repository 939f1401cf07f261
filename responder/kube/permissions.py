"""Every Kubernetes API permission the service needs: the one list RBAC is checked against.

Stage: kube edge (facts only). What every alert needs is listed here; what an action needs is in its row of
`responder.models.actions.TRAITS`. `oom-responder doctor` checks each entry with a SelfSubjectAccessReview;
a test holds the Helm chart's Role/ClusterRole equal to this list. Change a call in `responder.kube` and
these facts together. No I/O here.
"""

from __future__ import annotations

from responder.models import actions, settings

__all__ = ["Permission", "needed"]


Permission = actions.Permission

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
    # After every mitigation (runbook Step 6): one follow-up Lease per workload, claimed by compare-and-swap;
    # one that is over is kept as a tombstone (never deleted).
    Permission(
        "coordination.k8s.io",
        "leases",
        "",
        "list",
        "find the follow-ups that are due, and read one (by name)",
        own_namespace=True,
    ),
    Permission("coordination.k8s.io", "leases", "", "create", "record a follow-up", own_namespace=True),
    Permission(
        "coordination.k8s.io",
        "leases",
        "",
        "update",
        "claim and advance a follow-up by CAS",
        own_namespace=True,
    ),
    Permission(
        "coordination.k8s.io",
        "leases",
        "",
        "patch",
        "mark an unreadable follow-up as reported once",
        own_namespace=True,
    ),
    Permission("", "pods", "", "list", "judge the workload's pods at each verdict horizon"),
)


def _for_action(spec: actions.ActionSpec) -> list[Permission]:
    traits = actions.traits_of(spec.action)
    found = list(traits.permissions)
    if traits.follows_rollout:
        found += actions.VERIFY_PERMISSIONS
    for option, permissions in traits.option_permissions.items():
        if getattr(spec.options, option):
            found += permissions
    return found


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
            if spec.action is actions.Action.HEAP_DUMP and not config.diagnostics.heap_dump.enabled:
                continue  # it only says it is disabled: no exec, no claim
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
