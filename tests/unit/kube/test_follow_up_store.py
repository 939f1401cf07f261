"""The follow-up records' store (`responder.kube.follow_ups.FollowUpStore`), over an in-memory API.

Aspects covered:

* a new record is created without reading first, and the next update starts from the copy this store
  wrote (no read), its write carrying that copy's resourceVersion;
* a record changed by someone else since costs one refused write (409), a read and a write again;
* a decision to write nothing is never taken on the remembered copy alone;
* a missing namespace fails the first create at once, naming it, instead of being retried as a conflict;
* a record is read by a LIST narrowed to its name.
"""

from __future__ import annotations

import datetime

import pytest

from responder.kube import errors, follow_ups
from responder.logic import following
from responder.models import follow_ups as records
from responder.models import settings, targets
from tests.unit import fakeapi

NOW = datetime.datetime(2026, 3, 1, 12, tzinfo=datetime.UTC)
WEB = targets.Target(targets.WorkloadKind.DEPLOYMENT, "shop", "web")
LEASES = "/apis/coordination.k8s.io/v1/namespaces/responder/leases"


def _record(incident: str = "occ-1") -> object:
    return following.begin(
        target=WEB,
        uid="uid-web",
        incident=incident,
        playbook="pb",
        action=settings.Action.RAISE_MEMORY,
        acted_at=NOW,
        config=settings.FollowUpSettings(),
    )


def _store(api: fakeapi.FakeApi) -> follow_ups.FollowUpStore:
    api.put_object("/api/v1/namespaces/responder", {"metadata": {"name": "responder"}})
    return follow_ups.FollowUpStore(fakeapi.kube_on(api), namespace="responder")


async def test_a_record_is_created_and_advanced_from_this_stores_copy_without_reads() -> None:
    api = fakeapi.FakeApi()
    store = _store(api)

    await store.update(WEB, lambda current: _record())
    await store.update(
        WEB, lambda current: current.model_copy(update={"confirmed": False}) if current else None
    )

    assert [r.method for r in api.requests] == ["POST", "PUT"]
    [put] = api.sent("PUT", LEASES)
    assert put.body["metadata"]["resourceVersion"]


async def test_a_record_changed_elsewhere_costs_one_refused_write_then_a_read() -> None:
    api = fakeapi.FakeApi()
    store = _store(api)
    other = follow_ups.FollowUpStore(fakeapi.kube_on(api), namespace="responder")
    await store.update(WEB, lambda current: _record())
    await other.update(WEB, lambda current: _record("occ-2"))  # creates: 409, reads, writes

    after = await store.update(
        WEB, lambda current: current.model_copy(update={"confirmed": False}) if current else None
    )

    assert after is not None and after.incident == "occ-2"
    methods = [r.method for r in api.requests]
    assert methods[-3:] == ["PUT", "GET", "PUT"]  # refused (stale copy), read (a LIST by name), written
    listed = api.requests[-2]
    assert ("fieldSelector", f"metadata.name={records.record_name(WEB)}") in listed.params


async def test_nothing_to_write_is_decided_on_a_fresh_read() -> None:
    api = fakeapi.FakeApi()
    store = _store(api)
    await store.update(WEB, lambda current: _record())

    unchanged = await store.update(WEB, lambda current: None)

    assert unchanged is not None
    assert [r.method for r in api.requests] == ["POST", "GET"]


async def test_a_missing_namespace_fails_the_first_create_at_once() -> None:
    api = fakeapi.FakeApi()
    api.refuse("POST", LEASES, 404, 'namespaces "responder" not found', times=20)
    store = follow_ups.FollowUpStore(fakeapi.kube_on(api), namespace="responder")

    with pytest.raises(errors.KubeNotFound, match="namespace responder not found"):
        await store.update(WEB, lambda current: _record())

    assert [r.method for r in api.requests] == ["POST"]
