"""Acting on one plan (`responder.engine.acting.Actor`): guard → precheck → reserve → write → budget back.

Aspects covered:

* a guardrail block (cooldown) writes nothing, is counted per guardrail and recorded as a Warning Event;
* a precheck refusal (a ResourceQuota answering the dry-run pod) fails the action before any budget is
  spent;
* a spent budget blocks right before the write;
* a 5xx on the write keeps the token spent (the write may have happened), a 4xx gives it back;
* in dry-run mode the write is sent as a server-side dry run, nothing is reserved or followed.
"""

from __future__ import annotations

import json

from responder.models import decisions, settings
from tests.unit.engine import cluster


def _tokens(api: cluster.fakeapi.FakeApi) -> float | None:
    stored = api.objects.get(f"{cluster.STATE}/oom-responder-state")
    if stored is None:
        return None
    tokens = json.loads(stored["data"]["state.json"]).get("budget_tokens")
    return None if tokens is None else float(tokens)


async def test_a_cooldown_block_is_counted_per_guardrail_and_recorded_as_a_warning_event() -> None:
    api = cluster.seeded()
    r = cluster.responder(api, cluster.config())
    await r.processor.handle(r.item())
    await r.processor.close(0)
    later = cluster.oom_killed_pod(at=cluster.NOW + cluster.datetime.timedelta(seconds=30))
    api.put_object(cluster.POD, later)
    r.clock.now += cluster.datetime.timedelta(minutes=1)

    await r.processor.handle(r.item())

    assert len(api.sent("PATCH", cluster.DEPLOYMENT)) == 1
    blocked = r.notices.told[-1]
    assert (blocked.outcome, blocked.guardrail) == (decisions.Outcome.BLOCKED, decisions.Guardrail.COOLDOWN)
    assert r.sample("oom_responder_guardrail_blocks_total", {"guardrail": "cooldown"}) == 1
    [event] = [e for e in api.sent("POST", cluster.EVENTS) if e.body["reason"] == "blocked:cooldown"]
    assert event.body["type"] == "Warning"


async def test_a_quota_refusing_the_dry_run_pod_fails_the_raise_before_any_budget_is_spent() -> None:
    api = cluster.seeded()
    api.refuse("POST", "/api/v1/namespaces/shop/pods", 403, 'pods "x" is forbidden: exceeded quota: mem')
    r = cluster.responder(api, cluster.config())

    await r.processor.handle(r.item())

    assert api.sent("PATCH") == []
    failed = r.notices.told[-1]
    assert (failed.outcome, failed.reason) == (decisions.Outcome.FAILED, decisions.Reason.QUOTA_REFUSED)
    assert _tokens(api) is None  # never reserved


async def test_a_spent_budget_blocks_right_before_the_write() -> None:
    api = cluster.seeded()
    r = cluster.responder(api, cluster.config(budget={"mutations": 0}))

    await r.processor.handle(r.item())

    assert api.sent("PATCH") == []
    assert r.notices.told[-1].guardrail is decisions.Guardrail.BUDGET


async def test_a_server_error_on_the_write_keeps_the_token_a_refusal_gives_it_back() -> None:
    api = cluster.seeded()
    api.refuse("PATCH", cluster.DEPLOYMENT, 500, "etcd timeout", times=5)
    r = cluster.responder(api, cluster.config())
    await r.processor.handle(r.item())
    assert r.notices.told[-1].reason is decisions.Reason.API_ERROR
    assert _tokens(api) == 19.0

    api.fail.clear()
    api.refuse("PATCH", cluster.DEPLOYMENT, 422, "spec.template: Invalid value")
    await r.processor.handle(r.item())
    assert r.notices.told[-1].reason is decisions.Reason.INVALID
    assert _tokens(api) == 19.0


async def test_in_dry_run_the_write_is_a_server_side_dry_run_and_nothing_is_reserved_or_followed() -> None:
    api = cluster.seeded()
    r = cluster.responder(api, cluster.config(mode=settings.Mode.DRY_RUN))

    await r.processor.handle(r.item())

    [patch] = api.sent("PATCH", cluster.DEPLOYMENT)
    assert patch.dry_run
    assert r.notices.told[-1].outcome is decisions.Outcome.WOULD_DO
    assert _tokens(api) is None
    assert not r.processor.verifier._tasks
