"""Slack threads kept with the incident in the workload's ledger, on the real control plane.

Aspects covered:
* threading survives a service restart: the first message's ts lands in the ledger entry of the occurrence,
  and a new `Notifiers` (new process, empty memory) posts the follow-up into that thread;
* a concurrent write between read and patch (a real 409 from kube-apiserver) is retried and loses nothing;
* across replicas the first thread kept wins;
* a notice without a ledger entry (nothing was written for it) changes nothing on the workload.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from kubernetes_asyncio import client as k8s

from responder import metrics as metrics_mod
from responder.engine import notifying
from responder.kube import client, threads
from responder.models import ledgers, notices, settings, targets
from tests.kubeplane import incidents
from tests.slackstub import samples, support
from tests.slackstub.fixtures import CHANNEL, TOKEN, Stub

pytestmark = pytest.mark.integration


def _kube(api: Any, metrics: metrics_mod.Metrics) -> client.Kube:
    return client.Kube(api=api, settings=settings.KubernetesSettings(), metrics=metrics)


async def _deployment_with_ledger(api: Any, namespace: str, occurrence: str) -> targets.Target:
    entry = ledgers.LedgerEntry(
        action=settings.Action.RAISE_MEMORY,
        from_value="128Mi",
        to_value="228Mi",
        playbook="oom-raise-memory",
        occurrence=occurrence,
        at=samples.AT,
        by="replica-a",
        container="app",
    )
    await incidents.create_deployment(
        api, namespace, "checkout", replicas=1, annotations={ledgers.ANNOTATION: ledgers.dump([entry])}
    )
    return targets.Target(kind=targets.WorkloadKind.DEPLOYMENT, namespace=namespace, name="checkout")


async def _ledger(api: Any, target: targets.Target) -> list[ledgers.LedgerEntry]:
    deployment = await k8s.AppsV1Api(api).read_namespaced_deployment(target.name, target.namespace)
    return ledgers.load((deployment.metadata.annotations or {}).get(ledgers.ANNOTATION))


def _notifiers(
    slack: Stub, metrics: metrics_mod.Metrics, fake_time: support.FakeTime, keeper: threads.ThreadKeeper
) -> notifying.Notifiers:
    return notifying.Notifiers.from_settings(
        settings.NotifierSettings(
            slack=settings.SlackSettings(
                enabled=True, channel=CHANNEL, api_url=slack.api_url, token_env="SLACK"
            )
        ),
        metrics=metrics,
        threads=keeper,
        environ={"SLACK": TOKEN},
        clock=fake_time.clock,
        sleep=fake_time.sleep,
    )


async def test_threading_survives_a_restart_through_the_ledger(
    kube_api: Any, namespace: str, slack: Stub, metrics: metrics_mod.Metrics, fake_time: support.FakeTime
) -> None:
    first = samples.notice()
    target = await _deployment_with_ledger(kube_api, namespace, first.incident)
    first = samples.notice(target=target)

    before = _notifiers(slack, metrics, fake_time, threads.ThreadKeeper(_kube(kube_api, metrics)))
    await before.start()
    before.notify(first)
    await before.drain()
    await before.close(5)
    (posted,) = slack.stub.posted
    assert threads.find_thread(await _ledger(kube_api, target), first.incident) == posted.ts

    # The service restarts: new Notifiers, new keeper, nothing in memory. The engine reads the ledger.
    after = _notifiers(slack, metrics, fake_time, threads.ThreadKeeper(_kube(kube_api, metrics)))
    await after.start()
    recovered = threads.find_thread(await _ledger(kube_api, target), first.incident)
    after.notify(samples.notice(notices.NoticeKind.VERIFICATION, target=target, thread=recovered))
    await after.drain()
    await after.close(5)
    assert slack.stub.rejections == []
    (reply,) = slack.stub.in_thread(posted.ts)
    assert "verified" in json.dumps(reply.blocks)
    assert len(slack.stub.top_level()) == 1


class _RacingKube(client.Kube):
    """A real client that lets another writer change the workload just before its first PATCH."""

    raced = False

    async def patch(self, path: str, body: Any, **kwargs: Any) -> client.Body:
        if not self.raced:
            self.raced = True
            await self.request(
                "PATCH",
                path,
                body={"metadata": {"annotations": {"example.com/other-writer": "was-here"}}},
                content_type=client.MERGE_PATCH,
            )
        return await super().patch(path, body, **kwargs)


async def test_a_conflicting_write_is_retried_and_both_writes_survive(
    kube_api: Any, namespace: str, metrics: metrics_mod.Metrics
) -> None:
    notice = samples.notice()
    target = await _deployment_with_ledger(kube_api, namespace, notice.incident)
    kube = _RacingKube(api=kube_api, settings=settings.KubernetesSettings(), metrics=metrics)
    written = await threads.store_thread(
        kube, target=target, occurrence=notice.incident, ts="1700000000.000100"
    )
    assert written
    assert kube.raced
    # At least our own race; the deployment controller writing status at the same time may add more.
    conflicts = metrics.registry.get_sample_value(
        "oom_responder_kube_requests_total", {"verb": "patch", "resource": "deployments", "code": "409"}
    )
    assert conflicts is not None
    assert conflicts >= 1
    deployment = await k8s.AppsV1Api(kube_api).read_namespaced_deployment(target.name, target.namespace)
    annotations = deployment.metadata.annotations
    assert annotations["example.com/other-writer"] == "was-here"
    assert (
        threads.find_thread(ledgers.load(annotations[ledgers.ANNOTATION]), notice.incident)
        == "1700000000.000100"
    )


async def test_the_first_thread_kept_wins_across_replicas(
    kube_api: Any, namespace: str, metrics: metrics_mod.Metrics
) -> None:
    notice = samples.notice()
    target = await _deployment_with_ledger(kube_api, namespace, notice.incident)
    notice = samples.notice(target=target)
    replica_a = threads.ThreadKeeper(_kube(kube_api, metrics))
    replica_b = threads.ThreadKeeper(_kube(kube_api, metrics))
    assert await replica_a.record(notice, "1700000000.000100")
    assert not await replica_b.record(notice, "1700000000.000200")
    assert threads.find_thread(await _ledger(kube_api, target), notice.incident) == "1700000000.000100"
    assert replica_b.lookup(notice.incident) == "1700000000.000200"


async def test_a_notice_without_a_ledger_entry_changes_nothing(
    kube_api: Any, namespace: str, metrics: metrics_mod.Metrics
) -> None:
    target = await _deployment_with_ledger(kube_api, namespace, "someone-else@2024")
    before = await k8s.AppsV1Api(kube_api).read_namespaced_deployment(target.name, target.namespace)
    refusal = samples.previews()["Blocked by a guardrail"]
    keeper = threads.ThreadKeeper(_kube(kube_api, metrics))
    assert not await keeper.record(dataclasses.replace(refusal, target=target), "1700000000.000300")
    after = await k8s.AppsV1Api(kube_api).read_namespaced_deployment(target.name, target.namespace)
    # The deployment controller writes the object on its own (resourceVersion, status)
    # (and adds its revision annotation), so compare the ledger itself.
    assert after.metadata.annotations[ledgers.ANNOTATION] == before.metadata.annotations[ledgers.ANNOTATION]
    assert (
        metrics.registry.get_sample_value(
            "oom_responder_kube_requests_total", {"verb": "patch", "resource": "deployments", "code": "200"}
        )
        is None
    )
    assert keeper.lookup(refusal.incident) == "1700000000.000300"
