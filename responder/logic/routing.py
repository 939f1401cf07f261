"""Routing: which playbook answers an event, and which key serializes its work.

Pure: decided from the event's kind and labels and the configured playbooks only; it must not read live
cluster state (that is planning's job, later in the pipeline).
"""

from __future__ import annotations

from collections.abc import Sequence

from responder.logic import matching
from responder.models import alerts, analyses, settings, targets

__all__ = ["queue_key", "route", "target_from_labels"]


def route(
    event: alerts.AlertEvent,
    playbooks: Sequence[settings.Playbook],
    *,
    pattern: analyses.Pattern | None = None,
) -> settings.Playbook | None:
    """The first playbook (in file order) that answers the event's kind and whose matchers all hold.

    `pattern` is the memory pattern of the workload's history when it is known (after the investigation);
    a playbook restricted to patterns only answers one of them, and never without an analysis, so at ingest
    (no analysis yet) and without Prometheus the routing is what it would be without pattern playbooks.
    """
    for playbook in playbooks:
        # The cheap tests first: at ingest (no pattern yet) every pattern playbook is passed over unmatched.
        if event.kind not in playbook.alerts:
            continue
        if playbook.pattern is not None and (pattern is None or pattern not in playbook.pattern):
            continue
        if not matching.matches_all(playbook.matchers, event.labels):
            continue
        return playbook
    return None


def queue_key(event: alerts.AlertEvent, *, settings: settings.AlertsSettings) -> str:
    """The key work for this event is serialized on, known before the owner is looked up.

    `namespace/workload` when the alert names its workload, else `namespace/pod`: alerts for two pods of one
    Deployment then usually share a key; processing locks on the resolved workload as well.
    """
    namespace = event.namespace or "-"
    name = event.labels.get(settings.workload_name_label) or event.pod or f"fingerprint:{event.fingerprint}"
    return f"{namespace}/{name}"


_KINDS = {kind.value.lower(): kind for kind in targets.WorkloadKind}


def target_from_labels(
    event: alerts.AlertEvent, *, settings: settings.AlertsSettings
) -> targets.Target | None:
    """The workload as far as the labels tell, without asking the cluster.

    A `workload_kind`/`workload` label pair names it (kube-state-metrics joins); otherwise the pod itself is
    the target, and the cluster-aware planner will climb to its owner. None when the namespace is unknown.
    """
    if not event.namespace:
        return None
    kind_label = event.labels.get(settings.workload_kind_label, "").lower()
    name = event.labels.get(settings.workload_name_label)
    if name and kind_label in _KINDS:
        return targets.Target(kind=_KINDS[kind_label], namespace=event.namespace, name=name)
    if event.pod:
        return targets.Target(kind=targets.WorkloadKind.POD, namespace=event.namespace, name=event.pod)
    return None
