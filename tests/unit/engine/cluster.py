"""A small cluster for engine unit tests: an in-memory API with one Deployment and its OOM-killed pod,
the real state store on it, a notifier that keeps what it is told, and a `Processor` wired like `serve`.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from responder import metrics as metrics_mod
from responder.engine import processing
from responder.kube import state
from responder.logic import planning
from responder.models import alerts, ledgers, mutations, notices, settings, targets, work
from tests.unit import fakeapi

NOW = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.UTC)
DEPLOYMENT = "/apis/apps/v1/namespaces/shop/deployments/web"
REPLICA_SET = "/apis/apps/v1/namespaces/shop/replicasets/web-7d9f"
POD = "/api/v1/namespaces/shop/pods/web-7d9f-abcde"
EVENTS = "/apis/events.k8s.io/v1/namespaces/shop/events"
STATE = "/api/v1/namespaces/responder/configmaps"


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime.datetime:
        return self.now


class Notices:
    def __init__(self) -> None:
        self.told: list[notices.Notice] = []

    def notify(self, notice: notices.Notice) -> None:
        self.told.append(notice)


def deployment(*, limit: str = "128Mi", replicas: int = 2, annotations: dict[str, str] | None = None) -> Any:
    return {
        "metadata": {"name": "web", "namespace": "shop", "annotations": annotations or {}},
        "spec": {
            "replicas": replicas,
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "resources": {"limits": {"memory": limit}}}]},
            },
        },
    }


def oom_killed_pod(*, at: datetime.datetime = NOW - datetime.timedelta(minutes=1)) -> Any:
    return {
        "metadata": {
            "name": "web-7d9f-abcde",
            "namespace": "shop",
            "ownerReferences": [{"kind": "ReplicaSet", "name": "web-7d9f", "controller": True}],
        },
        "status": {
            "containerStatuses": [
                {
                    "name": "app",
                    "restartCount": 1,
                    "state": {"running": {}},
                    "lastState": {
                        "terminated": {
                            "reason": "OOMKilled",
                            "exitCode": 137,
                            "finishedAt": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        }
                    },
                }
            ]
        },
    }


def seeded(**workload: Any) -> fakeapi.FakeApi:
    api = fakeapi.FakeApi()
    api.put_object(DEPLOYMENT, deployment(**workload))
    api.put_object(
        REPLICA_SET,
        {
            "metadata": {
                "name": "web-7d9f",
                "ownerReferences": [{"kind": "Deployment", "name": "web", "controller": True}],
            }
        },
    )
    api.put_object(POD, oom_killed_pod())
    return api


def event(kind: settings.AlertKind = settings.AlertKind.OOM_KILLED) -> alerts.AlertEvent:
    return alerts.AlertEvent(
        kind=kind,
        alertname="OOMKilled",
        status=alerts.AlertStatus.FIRING,
        fingerprint="f00d",
        starts_at=NOW - datetime.timedelta(minutes=5),
        namespace="shop",
        pod="web-7d9f-abcde",
        container="app",
        severity="critical",
        labels={},
        annotations={},
        generator_url="",
        external_url="",
    )


def config(
    *actions: Any, mode: settings.Mode = settings.Mode.ENFORCE, **guardrails: Any
) -> settings.Settings:
    return settings.Settings.model_validate(
        {
            "mode": mode.value,
            "playbooks": [
                {"name": "pb", "alerts": ["oom_killed"], "actions": list(actions) or ["raise_memory"]}
            ],
            "guardrails": guardrails,
            "kubernetes": {"own_namespace": "responder"},
        }
    )


@dataclasses.dataclass
class Responder:
    api: fakeapi.FakeApi
    processor: processing.Processor
    notices: Notices
    metrics: metrics_mod.Metrics
    store: state.StateStore
    clock: Clock

    def item(self, alert: alerts.AlertEvent | None = None) -> work.WorkItem:
        alert = alert or event()
        [playbook] = self.processor.settings.playbooks
        return work.WorkItem(event=alert, playbook=playbook, received_at=NOW, queue_key="shop/web")

    def sample(self, name: str, labels: dict[str, str]) -> float | None:
        return self.metrics.registry.get_sample_value(name, labels)


def responder(api: fakeapi.FakeApi, config: settings.Settings) -> Responder:
    metrics = metrics_mod.Metrics()
    kube = fakeapi.kube_on(api, metrics=metrics, own_namespace="responder")
    store = state.StateStore(kube, namespace="responder", settings=config)
    told = Notices()
    clock = Clock()
    processor = processing.Processor(
        settings=config,
        metrics=metrics,
        kube=kube,
        notifiers=told,
        state_store=store,
        clock=clock,
        identity="responder-0",
        own_namespace="responder",
    )
    return Responder(api, processor, told, metrics, store, clock)


def snapshot_of(api: fakeapi.FakeApi, *, hpa: Any = None) -> mutations.WorkloadSnapshot:
    workload = api.objects[DEPLOYMENT]
    raw = (workload["metadata"].get("annotations") or {}).get(ledgers.ANNOTATION)
    return mutations.WorkloadSnapshot(
        target=targets.Target(targets.WorkloadKind.DEPLOYMENT, "shop", "web"),
        workload=workload,
        pod=api.objects.get(POD),
        ledger=tuple(ledgers.load(raw)),
        hpa=hpa,
    )


def mutation_for(snapshot: mutations.WorkloadSnapshot, *specs: Any) -> mutations.Mutation[Any]:
    book = settings.Playbook.model_validate({"name": "pb", "alerts": ["oom_killed"], "actions": list(specs)})
    proposal = planning.propose(
        snapshot=snapshot,
        event=event(),
        playbook=book,
        config=settings.Settings(playbooks=[book]),
        now=NOW,
        identity="responder-0",
    )
    assert proposal.mutation is not None, proposal.skipped
    return proposal.mutation
