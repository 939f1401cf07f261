"""The service's own Prometheus metrics, defined once on an injected registry.

Label values come from enums or status codes, never from pod names or fingerprints, so cardinality stays
bounded however many alerts arrive.
"""

from __future__ import annotations

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

import responder

__all__ = ["Metrics"]

_PREFIX = "oom_responder"


class Metrics:
    """Every metric the service exports. Tests build their own with a fresh `CollectorRegistry()`."""

    def __init__(self, registry: CollectorRegistry | None = None, *, process_metrics: bool = False) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        if process_metrics:
            # Process and GC metrics for the real service; tests leave them out to keep registries independent.
            prometheus_client.ProcessCollector(registry=self.registry)
            prometheus_client.PlatformCollector(registry=self.registry)
            prometheus_client.GCCollector(registry=self.registry)
        r = self.registry
        self.webhook_requests = Counter(
            f"{_PREFIX}_webhook_requests",
            "Webhook requests answered, by HTTP status code.",
            ["code"],
            registry=r,
        )
        self.alerts_received = Counter(
            f"{_PREFIX}_alerts_received",
            "Alerts received in accepted webhooks, by alert name and status.",
            ["alertname", "status"],
            registry=r,
        )
        self.alerts_deduplicated = Counter(
            f"{_PREFIX}_alerts_deduplicated",
            "Alerts dropped as repeats of an occurrence already queued (fingerprint + startsAt).",
            registry=r,
        )
        self.alerts_refused = Counter(
            f"{_PREFIX}_alerts_refused",
            "Alerts refused on arrival, before any API request, by reason (invalid_name, out_of_scope).",
            ["reason"],
            registry=r,
        )
        self.alerts_truncated = Counter(
            f"{_PREFIX}_alerts_truncated",
            "Alerts Alertmanager left out of notifications (truncatedAlerts: the receiver's max_alerts); "
            "they never arrived.",
            registry=r,
        )
        self.alerts_handed_off = Counter(
            f"{_PREFIX}_alerts_handed_off",
            "Acknowledged alerts left at shutdown and taken over by a live replica (server.handoff_url).",
            registry=r,
        )
        self.alerts_lost = Counter(
            f"{_PREFIX}_alerts_lost",
            "Acknowledged alerts left at shutdown that no live replica took over (lost until Alertmanager "
            "repeats them).",
            registry=r,
        )
        self.queue_depth = Gauge(f"{_PREFIX}_queue_depth", "Alerts waiting for or under work.", registry=r)
        self.work_failures = Counter(
            f"{_PREFIX}_work_failures",
            "Alerts whose processing raised an unexpected error (a bug: the alert was logged, not acted on).",
            registry=r,
        )
        self.actions = Counter(
            f"{_PREFIX}_actions",
            "Mitigations by playbook, action and result (done, would_do, skipped, blocked, failed, escalated).",
            ["playbook", "action", "result"],
            registry=r,
        )
        self.guardrail_blocks = Counter(
            f"{_PREFIX}_guardrail_blocks", "Mitigations blocked, by guardrail.", ["guardrail"], registry=r
        )
        self.action_duration = Histogram(
            f"{_PREFIX}_action_duration_seconds",
            "Time from dequeuing an alert to the mitigation's write being accepted (or refused), by action.",
            ["action"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.kube_requests = Counter(
            f"{_PREFIX}_kube_requests",
            "Kubernetes API requests, by verb, resource (plural, with its subresource: pods/eviction) and HTTP "
            "status code (0 for no answer).",
            ["verb", "resource", "code"],
            registry=r,
        )
        self.notifications = Counter(
            f"{_PREFIX}_notifications",
            "Notifications by notifier and result (sent, failed, dropped, digested).",
            ["notifier", "result"],
            registry=r,
        )
        self.analyses = Counter(
            f"{_PREFIX}_analyses",
            "Memory-history analyses (RB-010 Step 3), by pattern (insufficient_data when Prometheus failed).",
            ["pattern"],
            registry=r,
        )
        self.prometheus_requests = Counter(
            f"{_PREFIX}_prometheus_requests",
            "Prometheus API requests, by query and HTTP status code (0 for no answer or a timeout).",
            ["query", "code"],
            registry=r,
        )
        self.analysis_duration = Histogram(
            f"{_PREFIX}_analysis_duration_seconds",
            "Time to read a workload's memory history from Prometheus and analyse it.",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.verdicts = Counter(
            f"{_PREFIX}_verdicts",
            "Verdicts taken after mitigations (runbook Step 6), by horizon and verdict "
            "(stable, still_leaking, failed, unknown).",
            ["horizon", "verdict"],
            registry=r,
        )
        self.scheduled_restarts = Counter(
            f"{_PREFIX}_scheduled_restarts",
            "Restarts due on a restart schedule, by result (done, blocked, skipped, failed).",
            ["result"],
            registry=r,
        )
        self.follow_ups = Gauge(
            f"{_PREFIX}_follow_ups",
            "Follow-up records at the last poll, by what they hold (verdicts, schedule, verification, "
            "unreadable).",
            ["holding"],
            registry=r,
        )
        self.follow_ups_late = Counter(
            f"{_PREFIX}_follow_ups_late",
            "Verdicts taken later than follow_up.late_after_seconds after they fell due (no replica ran).",
            registry=r,
        )
        self.build_info = Info(f"{_PREFIX}_build", "Version of the running service.", registry=r)
        self.build_info.info({"version": responder.__version__})
