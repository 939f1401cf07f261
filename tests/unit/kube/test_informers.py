"""The informers' store and how reads are answered from it (no API server: events are applied directly).

Covers: ADDED/MODIFIED/DELETED events change the store, BOOKMARKs only move the resourceVersion, an ERROR
event with 410 asks for a new list and any other ends the watch; a list replaces the store (what vanished is
dropped); stored objects lose managedFields and the last-applied annotation; an object path maps to its
informer and nothing else does (subresources, other namespaces when scoped, unsynced informers); `wait_for`
wakes on the change that satisfies it; fetching reads a cached object as a copy, asks the API server for one
the cache lacks unless the name was a guess, and after a 409 on the path; the quota pre-check is skipped only
where the cache shows neither a ResourceQuota nor a LimitRange.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from responder import metrics as metrics_mod
from responder.kube import client, errors, fetching, informers
from responder.models import settings


class _Refusing:
    """A transport that must not be used: every request it sees fails the test's expectation loudly."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def send(self, method: str, path: str, **_: Any) -> client.Answer:
        self.paths.append(path)
        return client.Answer(status=404, data='{"kind":"Status","code":404}', headers={})


def _kube() -> tuple[client.Kube, _Refusing]:
    transport = _Refusing()
    kube = client.Kube(
        settings=settings.KubernetesSettings(),
        metrics=metrics_mod.Metrics(),
        transport=transport,  # type: ignore[arg-type]  # only send() is reached in these tests
    )
    return kube, transport


def _deployment(name: str, namespace: str = "shop", version: str = "1", **annotations: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "resourceVersion": version,
            "managedFields": [{"manager": "kubectl"}],
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", **annotations},
        },
        "spec": {"replicas": 1},
    }


def _synced(
    kube: client.Kube, *objects: dict[str, Any], namespaces: list[str] | None = None
) -> informers.Informers:
    cache = informers.Informers(kube, namespaces=namespaces or [])
    for informer in cache._informers.values():
        informer._replace([o for o in objects if informer.resource is informers.DEPLOYMENTS])
        informer.synced.set()
    kube.informers = cache
    return cache


def test_events_change_the_store_and_bookmarks_only_the_version() -> None:
    kube, _ = _kube()
    informer = informers.Informer(kube, resource=informers.DEPLOYMENTS, namespace="shop")
    informer._apply({"type": "ADDED", "object": _deployment("api", version="5")})
    informer._apply({"type": "MODIFIED", "object": _deployment("api", version="6", mark="x")})
    informer._apply({"type": "ADDED", "object": _deployment("web", version="7")})
    informer._apply({"type": "DELETED", "object": _deployment("web", version="8")})
    informer._apply({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "12"}}})
    stored = informer.get("shop", "api")
    assert stored is not None and stored["metadata"]["annotations"] == {"mark": "x"}
    assert "managedFields" not in stored["metadata"]
    assert informer.get("shop", "web") is None
    assert [o["metadata"]["name"] for o in informer.items("shop")] == ["api"]
    assert informer.resource_version == "12"


def test_an_error_event_with_410_asks_for_a_new_list_and_others_end_the_watch() -> None:
    kube, _ = _kube()
    informer = informers.Informer(kube, resource=informers.DEPLOYMENTS)
    with pytest.raises(informers._Gone):
        informer._apply({"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old"}})
    with pytest.raises(errors.KubeUnavailable):
        informer._apply({"type": "ERROR", "object": {"kind": "Status", "code": 500, "message": "boom"}})


def test_a_list_replaces_the_store() -> None:
    kube, _ = _kube()
    informer = informers.Informer(kube, resource=informers.DEPLOYMENTS)
    informer._replace([_deployment("a"), _deployment("b", namespace="other")])
    informer._replace([_deployment("b", namespace="other"), _deployment("c")])
    assert sorted(o["metadata"]["name"] for o in informer.items()) == ["b", "c"]
    assert informer.items("shop") == [informer.get("shop", "c")]


@pytest.mark.parametrize(
    ("path", "known"),
    [
        pytest.param("/apis/apps/v1/namespaces/shop/deployments/api", True, id="object"),
        pytest.param("/apis/apps/v1/namespaces/shop/deployments/absent", True, id="absent-object"),
        pytest.param("/apis/apps/v1/namespaces/shop/deployments/api/scale", False, id="subresource"),
        pytest.param("/apis/apps/v1/namespaces/shop/deployments", False, id="collection"),
        pytest.param("/api/v1/namespaces/shop/pods/api-1", False, id="pods-not-cached"),
        pytest.param("/apis/apps/v1/namespaces/elsewhere/deployments/api", False, id="not-scoped"),
        pytest.param("/apis/batch/v1/namespaces/shop/jobs/api", False, id="other-resource"),
    ],
)
def test_object_paths_map_to_their_informer(path: str, known: bool) -> None:
    kube, _ = _kube()
    cache = _synced(kube, _deployment("api"), namespaces=["shop"])
    assert cache.lookup(path)[0] is known


def test_nothing_is_known_before_the_first_list() -> None:
    kube, _ = _kube()
    cache = informers.Informers(kube)
    assert cache.lookup("/apis/apps/v1/namespaces/shop/deployments/api") == (False, None)
    assert cache.items(informers.HPAS, "shop") is None


async def test_wait_for_wakes_on_the_change_that_satisfies_it() -> None:
    kube, _ = _kube()
    informer = informers.Informer(kube, resource=informers.DEPLOYMENTS)
    informer._replace([_deployment("api")])
    informer.synced.set()
    waiting = asyncio.create_task(
        informer.wait_for(
            "shop", "api", lambda o: o is None or "done" in o["metadata"]["annotations"], timeout_seconds=5
        )
    )
    await asyncio.sleep(0)
    informer._apply({"type": "MODIFIED", "object": _deployment("api", version="2", other="y")})
    await asyncio.sleep(0)
    assert not waiting.done()
    informer._apply({"type": "MODIFIED", "object": _deployment("api", version="3", done="y")})
    seen = await waiting
    assert seen is not None and seen["metadata"]["resourceVersion"] == "3"
    assert informer._waiters == {}


async def test_fetching_reads_a_copy_from_the_cache_and_asks_for_what_it_lacks() -> None:
    kube, transport = _kube()
    _synced(kube, _deployment("api"))
    path = "/apis/apps/v1/namespaces/shop/deployments/api"
    read = await fetching.read_optional(kube, path)
    assert read is not None and read["metadata"]["name"] == "api"
    read["metadata"]["name"] = "changed by a reader"
    assert kube.informers is not None and kube.informers.lookup(path)[1]["metadata"]["name"] == "api"  # type: ignore[index]
    assert transport.paths == []
    # Missing from the cache: asked (it may not have arrived yet), unless the name was only a guess.
    absent = "/apis/apps/v1/namespaces/shop/deployments/absent"
    assert await fetching.read_optional(kube, absent, trust_absence=True) is None
    assert transport.paths == []
    assert await fetching.read_optional(kube, absent) is None
    assert transport.paths == [absent]
    # After a 409 on the path, the next read goes to the API server.
    kube.conflicted.add(path)
    assert await fetching.read_optional(kube, path) is None  # this transport answers 404
    assert transport.paths == [absent, path]
    assert await fetching.read_optional(kube, path) is not None
    assert transport.paths == [absent, path]


def test_the_pod_precheck_is_skipped_only_where_the_cache_shows_no_quota_and_no_limits() -> None:
    kube, _ = _kube()
    assert fetching.has_no_quota_or_limits(kube, "shop") is False  # no cache
    cache = _synced(kube)
    assert fetching.has_no_quota_or_limits(kube, "shop") is True
    quota = {"metadata": {"name": "q", "namespace": "shop", "resourceVersion": "1"}}
    cache._informers[(informers.RESOURCE_QUOTAS, None)]._replace([quota])
    assert fetching.has_no_quota_or_limits(kube, "shop") is False
    assert fetching.has_no_quota_or_limits(kube, "other") is True
    cache._informers[(informers.LIMIT_RANGES, None)].synced.clear()
    assert fetching.has_no_quota_or_limits(kube, "other") is False
