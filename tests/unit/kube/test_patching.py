"""Writing to the cluster (`responder.kube.patching`), over an in-memory API.

Aspects covered:

* a ledger write re-reads and retries after a 409 (someone wrote between its read and its write), gives up
  after its attempts, writes nothing when the change says so, and reports a gone workload as not written;
* a ledger write is the one ledger PATCH shape (annotation under the resourceVersion just read), with a
  revert computed from the object read for that same write;
* an eviction goes through the Eviction API, as a dry run when asked; the in-place resize patches the pod's
  `resize` subresource with the container's new memory only.
"""

from __future__ import annotations

import datetime
from typing import Any

from responder.kube import patching
from responder.models import actions, decisions, ledgers, targets
from tests.unit import fakeapi

TARGET = targets.Target(targets.WorkloadKind.DEPLOYMENT, "shop", "web")
PATH = "/apis/apps/v1/namespaces/shop/deployments/web"
NOW = datetime.datetime(2026, 3, 1, 12, tzinfo=datetime.UTC)
ENTRY = ledgers.LedgerEntry(
    action=actions.Action.SCALE_OUT,
    from_value="1",
    to_value="2",
    playbook="pb",
    occurrence="f@1",
    at=NOW,
    by="r0",
)


def _seed(api: fakeapi.FakeApi) -> dict[str, Any]:
    return api.put_object(
        PATH,
        {
            "metadata": {"name": "web", "annotations": {ledgers.ANNOTATION: ledgers.dump([ENTRY])}},
            "spec": {"replicas": 2},
        },
    )


def _ledger(api: fakeapi.FakeApi) -> list[ledgers.LedgerEntry]:
    return ledgers.load(api.objects[PATH]["metadata"]["annotations"][ledgers.ANNOTATION])


async def test_a_ledger_write_that_loses_a_race_reads_again_and_writes() -> None:
    api = fakeapi.FakeApi()
    _seed(api)
    api.refuse("PATCH", PATH, 409, "modified")
    kube = fakeapi.kube_on(api)

    written = await patching.update_ledger(
        kube,
        TARGET,
        lambda entries: [e.model_copy(update={"result": decisions.Outcome.FAILED}) for e in entries],
        attempts=3,
    )

    assert written
    assert [e.result.value for e in _ledger(api)] == ["failed"]
    assert len(api.sent("GET")) == 2 and len(api.sent("PATCH")) == 2
    assert [r.method for r in api.requests] == ["GET", "PATCH", "GET", "PATCH"]
    body = api.sent("PATCH")[-1].body
    assert body == ledgers.patch_body(body["metadata"]["resourceVersion"], _ledger(api))


async def test_a_ledger_write_gives_up_after_its_attempts_and_leaves_the_ledger_alone() -> None:
    api = fakeapi.FakeApi()
    _seed(api)
    api.refuse("PATCH", PATH, 409, "modified", times=3)
    kube = fakeapi.kube_on(api)

    written = await patching.update_ledger(kube, TARGET, lambda entries: [], attempts=3)

    assert not written
    assert _ledger(api) == [ENTRY]


async def test_a_ledger_write_with_nothing_to_change_or_no_workload_writes_nothing() -> None:
    api = fakeapi.FakeApi()
    kube = fakeapi.kube_on(api)
    assert not await patching.update_ledger(kube, TARGET, lambda entries: [], attempts=3)
    _seed(api)
    assert not await patching.update_ledger(kube, TARGET, lambda entries: None, attempts=3)
    assert api.sent("PATCH") == []


async def test_a_revert_is_computed_from_the_object_read_for_the_same_write() -> None:
    api = fakeapi.FakeApi()
    _seed(api)
    kube = fakeapi.kube_on(api)
    seen: list[int] = []

    def revert(workload: Any) -> dict[str, Any]:
        seen.append(workload["spec"]["replicas"])
        return {"spec": {"replicas": 1}}

    assert await patching.update_ledger(kube, TARGET, lambda entries: entries, attempts=1, extra_for=revert)

    assert seen == [2]
    assert api.objects[PATH]["spec"]["replicas"] == 1


async def test_an_eviction_goes_through_the_eviction_api_and_a_dry_run_evicts_nothing() -> None:
    api = fakeapi.FakeApi()
    pod = "/api/v1/namespaces/shop/pods/web-1"
    api.put_object(pod, {"metadata": {"name": "web-1"}})
    kube = fakeapi.kube_on(api)

    await patching.evict_pod(kube, "shop", "web-1", dry_run=True)
    assert pod in api.objects
    await patching.evict_pod(kube, "shop", "web-1")
    assert pod not in api.objects

    dry, real = api.sent("POST", f"{pod}/eviction")
    assert dry.body["deleteOptions"] == {"dryRun": ["All"]} and dry.dry_run
    assert real.body == {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": "web-1", "namespace": "shop"},
    }


async def test_an_in_place_resize_patches_only_the_containers_memory_on_the_resize_subresource() -> None:
    api = fakeapi.FakeApi()
    pod = "/api/v1/namespaces/shop/pods/web-1"
    api.put_object(
        f"{pod}/resize", {"metadata": {"name": "web-1"}, "spec": {"containers": [{"name": "app"}]}}
    )
    kube = fakeapi.kube_on(api)

    await patching.resize_pod(
        kube, "shop", "web-1", container="app", limit_bytes=256 * 2**20, request_bytes=None
    )

    [sent] = api.sent("PATCH")
    assert sent.path == f"{pod}/resize"
    assert sent.body == {
        "spec": {"containers": [{"name": "app", "resources": {"limits": {"memory": "256Mi"}}}]}
    }
