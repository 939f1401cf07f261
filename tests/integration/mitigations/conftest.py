"""The responder wired as in `serve`, posting real Alertmanager payloads to POST /webhook, against the real
control plane. Only the notifier is a recorder: Slack is not what these tests are about."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import test_utils

from responder import config as config_mod
from responder import metrics as metrics_mod
from responder.engine import investigating, processing
from responder.kube import client as kube_client
from responder.kube import state as state_mod
from responder.logic import deduplicating
from responder.models import notices, settings
from responder.web import app as app_mod
from responder.web import auth
from tests.kubeplane.plane import KubePlane

OWN_NAMESPACE = "oom-responder-system"


class RecordingNotifier:
    def __init__(self) -> None:
        self.notices: list[notices.Notice] = []

    def notify(self, notice: notices.Notice) -> None:
        self.notices.append(notice)

    def kinds(self) -> list[notices.NoticeKind]:
        return [n.kind for n in self.notices]


@dataclasses.dataclass
class Responder:
    http: test_utils.TestClient[Any, Any]
    processor: processing.Processor
    notifier: RecordingNotifier
    metrics: metrics_mod.Metrics
    kube: kube_client.Kube
    app: Any

    async def post(
        self,
        alertname: str,
        labels: dict[str, str],
        *,
        status: str = "firing",
        starts_at: str = "2026-03-01T11:00:00Z",
    ) -> dict[str, int]:
        """Post one alert the way Alertmanager v0.25 does and wait until it was processed (and verified).

        Returns the webhook's counts (accepted, duplicates, resolved, ignored)."""
        alert_labels = {"alertname": alertname, **labels}
        payload = {
            "version": "4",
            "groupKey": f'{{}}:{{alertname="{alertname}"}}',
            "truncatedAlerts": 0,
            "status": status,
            "receiver": "oom-responder",
            "groupLabels": {"alertname": alertname},
            "commonLabels": alert_labels,
            "commonAnnotations": {},
            "externalURL": "http://alertmanager.invalid",
            "alerts": [
                {
                    "status": status,
                    "labels": alert_labels,
                    "annotations": {},
                    "startsAt": starts_at,
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://prometheus.invalid/graph",
                    # Alertmanager derives the fingerprint from the labels: the same alert has the same one.
                    "fingerprint": hashlib.sha256(repr(sorted(alert_labels.items())).encode()).hexdigest()[
                        :16
                    ],
                }
            ],
        }
        answer = await self.http.post("/webhook", json=payload)
        assert answer.status == 202, await answer.text()
        counts: dict[str, int] = await answer.json()
        await self.app[app_mod.QUEUE].wait_idle()
        await self.processor.wait_verifications()
        return counts

    def count(self, playbook: str, action: str, result: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "oom_responder_actions_total", {"playbook": playbook, "action": action, "result": result}
        )
        return value or 0.0


def make_settings(namespace: str, plane: KubePlane, **overrides: Any) -> settings.Settings:
    data: dict[str, Any] = {
        "mode": "enforce",
        "identity": "responder-test",
        "auth": {"mode": "none"},
        "kubernetes": {"kubeconfig": str(plane.kubeconfig), "own_namespace": OWN_NAMESPACE},
        "guardrails": {"state_namespace": namespace},
        # The follow-up records live beside the guardrail state. Left to default to OWN_NAMESPACE, which these
        # tests never create, every mitigation's record write would meet a 404 and retry until it gave up.
        "follow_up": {"namespace": namespace},
        "verification": {"timeout_seconds": 60, "poll_seconds": 0.3},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return settings.Settings.model_validate(data)


ResponderFactory = Callable[..., Any]


@pytest.fixture
async def responder_factory(kube_plane: KubePlane, namespace: str) -> AsyncIterator[Callable[..., Any]]:
    """`await factory(**settings_overrides) -> Responder`, torn down after the test."""
    opened: list[tuple[Responder, test_utils.TestServer]] = []

    async def factory(**overrides: Any) -> Responder:
        config = make_settings(namespace, kube_plane, **overrides)
        metrics = metrics_mod.Metrics()
        kube = await kube_client.Kube.connect(settings=config.kubernetes, metrics=metrics)
        store = state_mod.StateStore(kube, namespace=namespace, settings=config)
        notifier = RecordingNotifier()
        deduplicator = deduplicating.Deduplicator.from_settings(config.dedup)
        processor = processing.Processor(
            settings=config,
            metrics=metrics,
            kube=kube,
            notifiers=notifier,
            state_store=store,
            clock=lambda: datetime.datetime.now(datetime.UTC),
            retry_on_next_delivery=lambda item: deduplicator.forget(deduplicating.occurrence_key(item.event)),
            investigator=investigating.Investigator(
                config.prometheus,
                authorization=config_mod.prometheus_authorization(config.prometheus),
                metrics=metrics,
            )
            if config.prometheus.url
            else None,
        )
        app = app_mod.make_app(
            settings=config,
            metrics=metrics,
            handler=processor.handle,
            readiness=lambda: (True, {}),
            authenticator=auth.Authenticator(disabled=True),
            deduplicator=deduplicator,
        )
        server = test_utils.TestServer(app)
        http: test_utils.TestClient[Any, Any] = test_utils.TestClient(server)
        await http.start_server()
        responder = Responder(
            http=http, processor=processor, notifier=notifier, metrics=metrics, kube=kube, app=app
        )
        opened.append((responder, server))
        return responder

    yield factory
    for responder, _server in opened:
        await responder.http.close()
        await responder.processor.close(5)
        await responder.kube.close()
