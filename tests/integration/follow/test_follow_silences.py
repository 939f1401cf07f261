"""A failed verdict, and a failed rollout verification taken over from another replica, expire the
mitigation's Alertmanager silence: the real control plane and the real Alertmanager.

Aspects covered:
* the 1h verdict finds the workload OOM-killed again: the silence named in the ledger entry is expired in
  Alertmanager and the verdict's notice says so;
* Alertmanager down: the verdict is taken, noted and reported all the same, its notice says the silence
  could not be expired;
* a rollout verification left by a dead replica and failing when picked up expires the silence too.
"""

from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from kubernetes_asyncio import client as k8s

from responder.engine import quieting
from responder.models import decisions, follow_ups, ledgers, notices, settings
from tests.alertmanager import conftest as am_support
from tests.alertmanager.conftest import start_alertmanager  # noqa: F401 - a fixture used below
from tests.alertmanager.test_silences import WEB_POD, event_for
from tests.integration.follow.test_follow_ups import (
    INCIDENT,
    Replica,
    clock_of,
    replicas,  # noqa: F401 - a fixture used below
    target,
    track,
)
from tests.kubeplane import incidents

pytestmark = [pytest.mark.integration, pytest.mark.alertmanager]


async def silenced_deployment(
    api: k8s.ApiClient, namespace: str, name: str, silence_id: str
) -> dict[str, Any]:
    """A Deployment whose ledger records the mitigation being followed and the silence it earned."""
    entry = ledgers.LedgerEntry(
        action=settings.Action.RAISE_MEMORY,
        playbook="oom-raise-memory",
        occurrence=INCIDENT,
        at=datetime.datetime.now(datetime.UTC),
        by="replica-a",
        silence=silence_id,
        **{"from": "128Mi", "to": "228Mi"},
    )
    created = await incidents.create_deployment(
        api, namespace, name, replicas=1, annotations={ledgers.ANNOTATION: ledgers.dump([entry])}
    )
    await incidents.wait_for_running_pods(
        api, namespace, selector=f"app={name}", count=1, timeout_seconds=120
    )
    return created


async def silence_in(quieter: quieting.Quieter) -> str:
    """A silence as `Quieter.silence_after` creates one after a mitigation."""
    config = quieter.settings
    quieted = await quieter.silence_after(
        event=event_for(WEB_POD, datetime.datetime.now(datetime.UTC)),
        target=target("shop", "web"),
        playbook=config.playbooks[0],
        action=settings.Action.RAISE_MEMORY,
        outcome=decisions.Outcome.DONE,
        now=datetime.datetime.now(datetime.UTC),
    )
    assert quieted.silence_id is not None, quieted.line
    return quieted.silence_id


def quieter_for(url: str) -> quieting.Quieter:
    config = settings.Settings.model_validate({"alertmanager": {"url": url, "timeout_seconds": 2}})
    return quieting.Quieter.from_settings(config, environ={})


async def oom_kill(api: k8s.ApiClient, namespace: str, name: str) -> None:
    pods = await incidents.wait_for_running_pods(api, namespace, selector=f"app={name}", count=1)
    await incidents.mark_oom_killed(api, pods[0])


async def test_a_failed_verdict_expires_the_mitigations_silence(
    replicas: Callable[..., Awaitable[Replica]],  # noqa: F811
    start_alertmanager: Callable[..., Any],  # noqa: F811
    namespace: str,
    kube_api: k8s.ApiClient,
) -> None:
    am = start_alertmanager("http://127.0.0.1:9/webhook")
    quieter = quieter_for(am.url)
    try:
        silence_id = await silence_in(quieter)
        assert quieter.client is not None
        assert (await quieter.client.get(silence_id)).state == "active"
        clock = clock_of(replicas)
        a = await replicas()
        a.following.quieter = quieter
        created = await silenced_deployment(kube_api, namespace, "web", silence_id)
        await track(a, created, clock)
        await oom_kill(kube_api, namespace, "web")
        clock.advance(3600)
        await a.tick()
        [verdict] = a.follow_up_notices()
        assert verdict.kind is notices.NoticeKind.ESCALATION and "1h verdict" in verdict.summary, verdict
        assert "OOMKilled again" in verdict.detail
        assert f"silence {silence_id} expired early: the 1h verdict found" in verdict.detail, verdict.detail
        assert (await quieter.client.get(silence_id)).state == "expired"
    finally:
        await quieter.close()


async def test_alertmanager_down_leaves_the_failed_verdict_whole_and_says_so(
    replicas: Callable[..., Awaitable[Replica]],  # noqa: F811
    namespace: str,
    kube_api: k8s.ApiClient,
) -> None:
    quieter = quieter_for(f"http://127.0.0.1:{am_support._free_port()}")
    try:
        clock = clock_of(replicas)
        a = await replicas()
        a.following.quieter = quieter
        created = await silenced_deployment(kube_api, namespace, "web", "0000-gone")
        await track(a, created, clock)
        await oom_kill(kube_api, namespace, "web")
        clock.advance(3600)
        await a.tick()
        [verdict] = a.follow_up_notices()
        assert verdict.kind is notices.NoticeKind.ESCALATION and "OOMKilled again" in verdict.detail
        assert "silence 0000-gone could not be expired" in verdict.detail, verdict.detail
        ledger = ledgers.load(
            (await k8s.AppsV1Api(kube_api).read_namespaced_deployment("web", namespace)).metadata.annotations[
                ledgers.ANNOTATION
            ]
        )
        assert ledger[0].verdicts == {"1h": "failed"}
    finally:
        await quieter.close()


async def test_a_taken_over_verification_that_fails_expires_the_silence(
    replicas: Callable[..., Awaitable[Replica]],  # noqa: F811
    start_alertmanager: Callable[..., Any],  # noqa: F811
    namespace: str,
    kube_api: k8s.ApiClient,
) -> None:
    am = start_alertmanager("http://127.0.0.1:9/webhook")
    quieter = quieter_for(am.url)
    try:
        silence_id = await silence_in(quieter)
        assert quieter.client is not None
        clock = clock_of(replicas)
        a = await replicas("replica-a", claim_seconds=30)
        a.following.quieter = quieter
        created = await silenced_deployment(kube_api, namespace, "raised", silence_id)
        verification = follow_ups.Verification(
            action=settings.Action.RAISE_MEMORY,
            generation=999,  # never rolled out: the verification times out, i.e. fails
            since=clock(),
            deadline=clock(),
            summary=f"memory limit of {namespace}/Deployment/raised container app raised 128Mi → 228Mi",
            from_value="128Mi",
            to_value="228Mi",
        )
        dead_claim = follow_ups.Claim(holder="replica-dead", until=clock() + datetime.timedelta(seconds=30))
        await track(a, created, clock, horizons=(), verification=verification, claim=dead_claim)
        clock.advance(31)
        await a.tick()
        [failed] = a.recorder.of_kind(notices.NoticeKind.VERIFICATION)
        assert failed.outcome is decisions.Outcome.FAILED and "rollout failed" in failed.summary, failed
        assert "after replica-dead stopped following it" in failed.detail
        assert f"silence {silence_id} expired early: the rollout of" in failed.detail, failed.detail
        assert (await quieter.client.get(silence_id)).state == "expired"
    finally:
        await quieter.close()
