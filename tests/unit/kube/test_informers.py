"""The informers' store and how reads are answered from it (no API server: events are applied directly).

Covers: the list-and-watch loop lists once, watches from the list's resourceVersion with bookmarks, and lists
again after 410 Gone (an ERROR event or the HTTP status) but not after a watch the server ended;
ADDED/MODIFIED/DELETED events change the store, BOOKMARKs only move the resourceVersion, an ERROR
event with 410 asks for a new list and any other ends the watch; a list replaces the store (what vanished is
dropped); stored objects lose managedFields and the last-applied annotation; an object path maps to its
informer and nothing else does (subresources, other namespaces when scoped, unsynced informers); `wait_for`
wakes on the change that satisfies it; fetching reads a cached object as a copy, asks the API server for one
the cache lacks unless the name was a guess, and after a 409 on the path; the quota pre-check is skipped only
where the cache shows neither a ResourceQuota nor a LimitRange; a watch refused by RBAC un-syncs the informer until
a list succeeds again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
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


class _Scripted:
    """A transport answering a list and then scripted watch streams, recording every request's query."""

    def __init__(self, watches: list[tuple[int, list[dict[str, Any]]]]) -> None:
        self.watches = watches
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.listed = 0

    async def send(self, method: str, path: str, *, params: list[tuple[str, str]], **_: Any) -> client.Answer:
        self.requests.append(("list", dict(params)))
        self.listed += 1
        items = [_deployment(f"listed-{self.listed}", version=str(10 * self.listed))]
        return client.Answer(
            status=200,
            data={"items": items, "metadata": {"resourceVersion": str(10 * self.listed)}},
            headers={},
        )

    @contextlib.asynccontextmanager
    async def open_lines(
        self, path: str, *, params: list[tuple[str, str]], timeout_seconds: float
    ) -> AsyncIterator[client.Lines]:
        self.requests.append(("watch", dict(params)))
        if not self.watches:
            await asyncio.Event().wait()  # the last watch stays open until the informer is cancelled
        status, events = self.watches.pop(0)

        async def lines() -> AsyncIterator[bytes]:
            for event in events:
                yield json.dumps(event).encode()

        yield client.Lines(
            status=status, lines=lines(), headers={}, error="" if status == 200 else '{"code": 410}'
        )


def _informer_on(transport: _Scripted) -> informers.Informer:
    kube = client.Kube(
        settings=settings.KubernetesSettings(),
        metrics=metrics_mod.Metrics(),
        transport=transport,  # type: ignore[arg-type]
    )
    return informers.Informer(
        kube, resource=informers.DEPLOYMENTS, namespace="shop", sleep=lambda _: asyncio.sleep(0)
    )


async def _run_until(informer: informers.Informer, transport: _Scripted, *, requests: int) -> None:
    """Run the informer's loop until the transport has seen `requests` requests (or 200 turns), then stop it."""
    task = asyncio.create_task(informer.run())
    try:
        for _ in range(200):
            if len(transport.requests) >= requests:
                break
            await asyncio.sleep(0)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_lists_once_rewatches_from_the_last_version_and_lists_again_after_410() -> None:
    transport = _Scripted(
        [
            # The server ends a watch (its timeoutSeconds) after an event and a bookmark: watch again from there.
            (
                200,
                [
                    {"type": "ADDED", "object": _deployment("a", version="11")},
                    {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "15"}}},
                ],
            ),
            # The version is gone: an ERROR event with a 410 Status.
            (
                200,
                [
                    {
                        "type": "ERROR",
                        "object": {"kind": "Status", "code": 410, "message": "too old resource version"},
                    }
                ],
            ),
            # After the new list, the watch itself is refused with HTTP 410.
            (410, []),
        ]
    )
    informer = _informer_on(transport)
    await _run_until(informer, transport, requests=7)
    kinds = [(kind, query.get("resourceVersion")) for kind, query in transport.requests]
    assert kinds == [
        ("list", None),
        ("watch", "10"),
        ("watch", "15"),
        ("list", None),
        ("watch", "20"),
        ("list", None),
        ("watch", "30"),
    ]
    watch_query = transport.requests[1][1]
    assert watch_query["allowWatchBookmarks"] == "true" and watch_query["watch"] == "1"
    assert 300 <= int(watch_query["timeoutSeconds"]) <= 600
    # The last list replaced the store: what earlier lists and events held is gone.
    assert [o["metadata"]["name"] for o in informer.items()] == ["listed-3"]
    assert informer.lists == 3


async def test_a_forbidden_watch_unsyncs_the_informer_until_a_list_succeeds_again() -> None:
    # RBAC grants list but not watch: the listed copy would never change again, so it must not be read.
    synced_when_listing: list[bool] = []

    class Watching(_Scripted):
        async def send(
            self, method: str, path: str, *, params: list[tuple[str, str]], **kw: Any
        ) -> client.Answer:
            synced_when_listing.append(informer.synced.is_set())
            return await super().send(method, path, params=params, **kw)

    transport = Watching([(403, [])])
    informer = _informer_on(transport)
    await _run_until(informer, transport, requests=4)
    assert [kind for kind, _ in transport.requests][:4] == ["list", "watch", "list", "watch"]
    # Not synced before the first list, nor after the refused watch (until the next list is in).
    assert synced_when_listing[:2] == [False, False]
    assert informer.synced.is_set()
