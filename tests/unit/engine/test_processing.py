"""The pipeline handler (`responder.engine.processing.Processor`) over an in-memory API.

Aspects covered:

* an OOM kill raises the limit in one write that carries the change, the ledger entry and the precondition,
  reports it once (metric, notice, Event) and follows the rollout in the background;
* a write that loses a resourceVersion race is re-planned from a fresh read, not reported as a failure; a
  workload that keeps changing is reported failed (`conflict`) after `conflict_attempts`;
* the same occurrence delivered again finds itself in the ledger (`already_handled`, a repeat notice);
* a gone pod's alert is skipped without a write; a refused write (RBAC) is failed with its reason and hands
  the budget back;
* the preview answers what `handle` would do, and writes, reserves and reports nothing;
* with Prometheus, the memory history of the workload the alert most likely names is read while the pod's
  owners are walked; a wrong guess is dropped and the located workload analysed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json

from responder.engine import investigating
from responder.models import analyses, decisions, ledgers, notices, targets
from tests.unit.engine import cluster


def _ledger(api: cluster.fakeapi.FakeApi) -> list[ledgers.LedgerEntry]:
    return ledgers.load(api.objects[cluster.DEPLOYMENT]["metadata"]["annotations"].get(ledgers.ANNOTATION))


def _limit(api: cluster.fakeapi.FakeApi) -> str:
    [container] = api.objects[cluster.DEPLOYMENT]["spec"]["template"]["spec"]["containers"]
    return str(container["resources"]["limits"]["memory"])


async def test_an_oom_kill_raises_the_limit_in_one_write_and_reports_it_once() -> None:
    api = cluster.seeded()
    r = cluster.responder(api, cluster.config())

    await r.processor.handle(r.item())
    await r.processor.close(0)

    [patch] = api.sent("PATCH", cluster.DEPLOYMENT)
    assert patch.body["metadata"]["resourceVersion"]  # the precondition rides with the change
    assert ledgers.ANNOTATION in patch.body["metadata"]["annotations"]
    assert _limit(api) == "228Mi"
    [entry] = _ledger(api)
    assert (entry.action.value, entry.from_value, entry.to_value) == ("raise_memory", "128Mi", "228Mi")
    [action] = [n for n in r.notices.told if n.kind is notices.NoticeKind.ACTION]
    assert action.outcome is decisions.Outcome.DONE
    assert (
        r.sample(
            "oom_responder_actions_total", {"playbook": "pb", "action": "raise_memory", "result": "done"}
        )
        == 1
    )
    [event] = [e for e in api.sent("POST", cluster.EVENTS) if e.body["action"] == "raise_memory"]
    assert event.body["reason"] == "done" and event.body["type"] == "Normal"


async def test_a_write_that_loses_a_race_is_planned_again_from_a_fresh_read() -> None:
    api = cluster.seeded()
    api.refuse("PATCH", cluster.DEPLOYMENT, 409, "modified")
    r = cluster.responder(api, cluster.config())

    await r.processor.handle(r.item())
    await r.processor.close(0)

    assert len(api.sent("PATCH", cluster.DEPLOYMENT)) == 2
    assert _limit(api) == "228Mi"
    assert [n.outcome for n in r.notices.told if n.action is not None] == [decisions.Outcome.DONE]
    state = json.loads(api.objects[f"{cluster.STATE}/oom-responder-state"]["data"]["state.json"])
    assert state["budget_tokens"] == 19.0  # the lost race's token came back


async def test_a_workload_that_keeps_changing_is_reported_failed_after_the_conflict_attempts() -> None:
    api = cluster.seeded()
    api.refuse("PATCH", cluster.DEPLOYMENT, 409, "modified", times=3)
    r = cluster.responder(api, cluster.config())

    await r.processor.handle(r.item())

    assert len(api.sent("PATCH", cluster.DEPLOYMENT)) == 3
    [failed] = [n for n in r.notices.told if n.outcome is decisions.Outcome.FAILED]
    assert failed.reason is decisions.Reason.CONFLICT
    assert _limit(api) == "128Mi"


async def test_the_same_occurrence_delivered_again_finds_itself_in_the_ledger() -> None:
    api = cluster.seeded()
    r = cluster.responder(api, cluster.config())
    await r.processor.handle(r.item())
    await r.processor.close(0)
    api.put_object(cluster.POD, cluster.oom_killed_pod())  # the same kill, still reported by the pod

    await r.processor.handle(r.item())

    assert len(api.sent("PATCH", cluster.DEPLOYMENT)) == 1
    repeat = r.notices.told[-1]
    assert (repeat.kind, repeat.reason) == (notices.NoticeKind.REPEAT, decisions.Reason.ALREADY_HANDLED)


async def test_a_refused_write_is_failed_with_its_reason_and_gives_the_budget_back() -> None:
    api = cluster.seeded()
    api.refuse(
        "PATCH",
        cluster.DEPLOYMENT,
        403,
        (
            'deployments.apps "web" is forbidden: User "system:serviceaccount:x:responder" cannot patch '
            'resource "deployments" in API group "apps" in the namespace "shop"'
        ),
    )
    r = cluster.responder(api, cluster.config())

    await r.processor.handle(r.item())

    [failed] = [n for n in r.notices.told if n.outcome is decisions.Outcome.FAILED]
    assert failed.reason is decisions.Reason.FORBIDDEN
    assert _ledger(api) == []
    state = json.loads(api.objects[f"{cluster.STATE}/oom-responder-state"]["data"]["state.json"])
    assert state["budget_tokens"] == 20.0
    [event] = [e for e in api.sent("POST", cluster.EVENTS) if e.body["action"] == "raise_memory"]
    assert (event.body["reason"], event.body["type"]) == ("failed:forbidden", "Warning")


async def test_an_alert_whose_pod_is_gone_is_skipped_without_a_write() -> None:
    api = cluster.seeded()
    del api.objects[cluster.POD]
    r = cluster.responder(api, cluster.config())

    await r.processor.handle(r.item())

    assert api.sent("PATCH") == []
    assert r.notices.told[-1].outcome is decisions.Outcome.SKIPPED


async def test_the_preview_answers_what_handle_would_do_and_writes_reserves_and_reports_nothing() -> None:
    api = cluster.seeded()
    r = cluster.responder(api, cluster.config())

    found = await r.processor.preview(r.item())

    assert found.decision.allowed
    assert found.plan is not None and (found.plan.from_value, found.plan.to_value) == ("128Mi", "228Mi")
    assert [req.method for req in api.requests if req.method != "GET"] == ["POST"]  # the dry-run admission
    assert api.requests[-1].dry_run
    assert r.notices.told == []
    assert (
        r.sample(
            "oom_responder_actions_total", {"playbook": "pb", "action": "raise_memory", "result": "done"}
        )
        is None
    )


async def test_the_preview_names_the_guardrail_that_would_block() -> None:
    api = cluster.seeded(annotations={"oom-responder.io/enabled": "false"})
    r = cluster.responder(api, cluster.config())

    found = await r.processor.preview(r.item())

    assert found.decision.guardrail is decisions.Guardrail.OPT_OUT
    assert all(req.method == "GET" for req in api.requests)


async def test_a_refusal_repeated_within_the_window_is_counted_not_notified_again() -> None:
    api = cluster.seeded()
    api.refuse("POST", "/api/v1/namespaces/shop/pods", 403, "exceeded quota: compute", times=3)
    r = cluster.responder(api, cluster.config())

    for minutes in (0, 1, 11):
        r.clock.now = cluster.NOW + cluster.datetime.timedelta(minutes=minutes)
        api.put_object(
            cluster.POD, cluster.oom_killed_pod(at=r.clock.now - cluster.datetime.timedelta(seconds=5))
        )
        await r.processor.handle(r.item())

    refusals = [n for n in r.notices.told if n.reason is decisions.Reason.QUOTA_REFUSED]
    assert len(refusals) == 2  # the first, and the first after the 600 s window
    assert refusals[1].detail.endswith("(1 more like this since the last notice)")
    assert (
        r.sample(
            "oom_responder_actions_total", {"playbook": "pb", "action": "raise_memory", "result": "failed"}
        )
        == 3
    )
    assert (
        len([e for e in api.sent("POST", cluster.EVENTS) if e.body["reason"] == "failed:quota_refused"]) == 2
    )


class _Investigator(investigating.Investigator):
    """Answers every analysis with `stable` (no Prometheus), noting which workload it was asked about and how
    many API requests had been sent when it started."""

    def __init__(self, api: cluster.fakeapi.FakeApi) -> None:  # no reader: nothing of the parent is used
        self.api = api
        self.asked: list[tuple[str, int]] = []
        self.cancelled: list[str] = []

    async def investigate(self, *, target: targets.Target, event: object, now: object) -> analyses.Analysis:
        self.asked.append((target.key, len(self.api.requests)))
        try:
            for _ in range(3):
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            self.cancelled.append(target.key)
            raise
        return analyses.Analysis(pattern=analyses.Pattern.STABLE, reason="flat")

    async def close(self) -> None:
        return None


def _with_investigator(api: cluster.fakeapi.FakeApi) -> tuple[cluster.Responder, _Investigator]:
    r = cluster.responder(api, cluster.config())
    investigator = _Investigator(api)
    r.processor.investigator = investigator
    return r, investigator


async def test_the_memory_history_is_read_while_the_pods_owners_are_walked() -> None:
    api = cluster.seeded()
    api.suspends = True
    r, investigator = _with_investigator(api)

    await r.processor.handle(r.item())
    await r.processor.close(0)

    # Guessed from the pod's name (web-7d9f-abcde: Deployment web) and started while the pod was being read.
    assert investigator.asked == [("shop/Deployment/web", 1)]
    assert investigator.cancelled == []
    [action] = [n for n in r.notices.told if n.kind is notices.NoticeKind.ACTION]
    assert action.outcome is decisions.Outcome.DONE


async def test_a_wrong_guess_is_dropped_and_the_located_workload_analysed() -> None:
    api = cluster.seeded()
    api.suspends = True
    r, investigator = _with_investigator(api)
    alert = dataclasses.replace(cluster.event(), labels={"workload_kind": "StatefulSet", "workload": "web"})

    await r.processor.handle(r.item(alert))
    await r.processor.close(0)

    assert [key for key, _ in investigator.asked] == ["shop/StatefulSet/web", "shop/Deployment/web"]
    assert _limit(api) == "228Mi"
