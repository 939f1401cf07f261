"""Helpers for the guardrail and replica tests (test support; no assertions here).

Alertmanager webhook bodies for OOMKilled pods, the work items the webhook would queue for them (through the
real normalizing and routing code), a notifier that keeps what it is told, and staging of OOM-killed
Deployments on the test control plane.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
from typing import Any

from kubernetes_asyncio import client as k8s

from responder.logic import normalizing, routing
from responder.models import alerts, ledgers, notices, settings, work
from tests.kubeplane import incidents

__all__ = [
    "Recorder",
    "ledger_of",
    "memory_limit_of",
    "oom_payload",
    "stage_oom_killed",
    "work_items",
]


def oom_payload(
    pods: list[tuple[str, str]], *, starts_at: datetime.datetime, container: str = "app"
) -> dict[str, Any]:
    """A firing OOMKilled webhook body (Alertmanager v4) for `(namespace, pod)` pairs, one alert each."""
    alert_list = []
    for namespace, pod in pods:
        labels = {
            "alertname": "OOMKilled",
            "namespace": namespace,
            "pod": pod,
            "container": container,
            "severity": "warning",
        }
        fingerprint = hashlib.sha256(f"{namespace}/{pod}/{container}".encode()).hexdigest()[:16]
        alert_list.append(
            {
                "status": "firing",
                "labels": labels,
                "annotations": {"summary": f"{pod} was OOMKilled"},
                "startsAt": starts_at.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z"),
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.invalid/graph",
                "fingerprint": fingerprint,
            }
        )
    return {
        "version": "4",
        "groupKey": '{}:{alertname="OOMKilled"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "oom-responder",
        "groupLabels": {"alertname": "OOMKilled"},
        "commonLabels": {"alertname": "OOMKilled"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.invalid",
        "alerts": alert_list,
    }


def work_items(body: dict[str, Any], *, config: settings.Settings) -> list[work.WorkItem]:
    """What the webhook queues for `body`: normalized, routed and keyed by the service's own code."""
    payload = alerts.WebhookPayload.model_validate(body)
    items = []
    for alert in payload.alerts:
        event = normalizing.normalize(alert, payload=payload, settings=config)
        assert event is not None
        items.append(
            work.WorkItem(
                event=event,
                playbook=routing.route(event, config.playbooks),
                received_at=datetime.datetime.now(datetime.UTC),
                queue_key=routing.queue_key(event, settings=config.alerts),
            )
        )
    return items


class Recorder:
    """A notifier that keeps every notice (the pipeline's notifier interface, without a network)."""

    def __init__(self) -> None:
        self.notices: list[notices.Notice] = []

    def notify(self, notice: notices.Notice) -> None:
        self.notices.append(notice)

    def of_kind(self, kind: notices.NoticeKind) -> list[notices.Notice]:
        return [notice for notice in self.notices if notice.kind is kind]


async def stage_oom_killed(
    api: k8s.ApiClient,
    namespace: str,
    names: list[str],
    *,
    memory_limit: str = "128Mi",
    annotations: dict[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
    """One-replica Deployments whose pod was just OOMKilled; returns each name's (marked) pod."""
    await asyncio.gather(
        *(
            incidents.create_deployment(
                api,
                namespace,
                name,
                replicas=1,
                containers=[incidents.container(memory_limit=memory_limit, memory_request=memory_limit)],
                annotations=annotations,
            )
            for name in names
        )
    )

    async def kill(name: str) -> tuple[str, dict[str, Any]]:
        running = await incidents.wait_for_running_pods(
            api, namespace, selector=f"app={name}", count=1, timeout_seconds=120
        )
        return name, await incidents.mark_oom_killed(api, running[0])

    pods = dict(await asyncio.gather(*(kill(name) for name in names)))
    return pods


async def _deployment(api: k8s.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    return incidents.to_dict(api, await k8s.AppsV1Api(api).read_namespaced_deployment(name, namespace))


async def ledger_of(api: k8s.ApiClient, namespace: str, name: str) -> list[ledgers.LedgerEntry]:
    deployment = await _deployment(api, namespace, name)
    return ledgers.load((deployment["metadata"].get("annotations") or {}).get(ledgers.ANNOTATION))


async def memory_limit_of(api: k8s.ApiClient, namespace: str, name: str) -> str:
    deployment = await _deployment(api, namespace, name)
    limit: str = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]
    return limit
