"""Informers: a watch-fed, read-only copy of the objects the pipeline reads, as client-go controllers keep one.

Stage: kube edge. An `Informer` lists one resource (in one namespace or the whole cluster) once, then watches
it from the list's resourceVersion with bookmarks, applies every event to its store, re-watches from the last
resourceVersion it saw when a watch ends, and lists again only when the API server answers 410 Gone (the
version was compacted away). `Informers` runs one per (resource, namespace) for the resources of
`RESOURCES`, on the service's own transport and throttle, and answers reads from the stores once synced.

What the cache is for, and what it must not be: it replaces GETs and LISTs that only look. It is never the
proof of anything: writes still carry the resourceVersion read here as a precondition, so a stale copy
costs a 409, and a 409 is answered by reading the API server, not the cache. A reader that finds an
informer not synced (starting, or forbidden by RBAC) falls back to the API. Objects are stored without
`metadata.managedFields` and the `last-applied-configuration` annotation (what client-go's transform hooks
drop too): the pipeline reads neither, and they are often most of an object's size. The store keeps compact
JSON and every read decodes a copy: parsed, a Deployment costs about ten times its JSON size.
This module decides nothing about incidents.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import logging
import random
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from responder.kube import client, errors

__all__ = ["RESOURCES", "Informer", "Informers", "Resource", "strip"]

logger = logging.getLogger(__name__)

Body = dict[str, Any]
Key = tuple[str, str]
"""(namespace, name); namespace is "" for cluster-scoped objects."""


@dataclasses.dataclass(frozen=True)
class Resource:
    """A listable, watchable resource: `/apis/apps/v1` + `deployments`."""

    prefix: str
    plural: str

    def path(self, namespace: str | None) -> str:
        if namespace:
            return f"{self.prefix}/namespaces/{namespace}/{self.plural}"
        return f"{self.prefix}/{self.plural}"


DEPLOYMENTS = Resource("/apis/apps/v1", "deployments")
STATEFUL_SETS = Resource("/apis/apps/v1", "statefulsets")
DAEMON_SETS = Resource("/apis/apps/v1", "daemonsets")
REPLICA_SETS = Resource("/apis/apps/v1", "replicasets")
HPAS = Resource("/apis/autoscaling/v2", "horizontalpodautoscalers")
RESOURCE_QUOTAS = Resource("/api/v1", "resourcequotas")
LIMIT_RANGES = Resource("/api/v1", "limitranges")

RESOURCES = (
    DEPLOYMENTS,
    STATEFUL_SETS,
    DAEMON_SETS,
    REPLICA_SETS,
    HPAS,
    RESOURCE_QUOTAS,
    LIMIT_RANGES,
)
"""What the pipeline reads about workloads: the workload kinds, the ReplicaSets that lead a pod to its
Deployment, what may own the scale (HPA) or refuse a bigger pod (quota, limits). Not PodDisruptionBudgets:
the pipeline never reads them (the eviction API answers 429 when one blocks), so keeping them would cost memory
and a watch for nothing. Not pods: one per container in the cluster, and the alerted pod is read once."""

_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

LIST_PAGE = 500
"""Objects per LIST page (client-go's default)."""
WATCH_SECONDS = (300, 600)
"""A watch asks the server to end it after a random time in this range (client-go: 5-10 min), so that
watches of many informers do not all end at once."""
BACKOFF_SECONDS = (0.8, 30.0)
"""First and longest pause after a failed list or watch (doubled per failure, jittered)."""


def strip(obj: Body) -> Body:
    """`obj` without what no reader needs and that often makes most of its size."""
    metadata = obj.get("metadata")
    if isinstance(metadata, dict):
        metadata.pop("managedFields", None)
        annotations = metadata.get("annotations")
        if isinstance(annotations, dict):
            annotations.pop(_LAST_APPLIED, None)
    return obj


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def _encode(obj: Body) -> bytes:
    return _ENCODER.encode(strip(obj)).encode()


def _decode(raw: bytes) -> Body:
    decoded: Body = json.loads(raw)
    return decoded


def _key(obj: Body) -> Key | None:
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str):
        return None
    namespace = metadata.get("namespace")
    return (namespace if isinstance(namespace, str) else "", metadata["name"])


def _version(obj: Body) -> str | None:
    metadata = obj.get("metadata")
    version = metadata.get("resourceVersion") if isinstance(metadata, dict) else None
    return version if isinstance(version, str) and version else None


class _Gone(Exception):
    """410: the watch's resourceVersion is older than the server keeps; list again."""


class Informer:
    """One resource in one namespace (None: all namespaces), listed then watched; `run()` until cancelled."""

    def __init__(
        self,
        kube: client.Kube,
        *,
        resource: Resource,
        namespace: str | None = None,
        field_selector: str | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.kube = kube
        self.resource = resource
        self.namespace = namespace
        self.field_selector = field_selector
        self._rng = rng or random.Random()
        self._sleep = sleep
        # Compact JSON, not parsed dicts: a Deployment parsed takes ~10x its JSON size in Python objects, and
        # every read needs its own copy anyway (readers may change what they are given).
        self._store: dict[Key, bytes] = {}
        self._by_namespace: dict[str, set[str]] = collections.defaultdict(set)
        self.resource_version = ""
        """The newest resourceVersion seen (a list's, an event's or a bookmark's)."""
        self.synced = asyncio.Event()
        """Set once a list is in the store; stays set through re-watches and re-lists, and is cleared while the
        resource is forbidden or not served (a copy that cannot be watched is not read)."""
        self.lists = 0
        """Lists made (1 + re-lists after 410 Gone or a failure)."""
        self.watches = 0
        """Watches opened."""
        self.last_error = ""
        """Why the last list or watch failed, for /readyz and logs; empty once one succeeds again."""
        self._waiters: dict[Key, list[tuple[Callable[[Body | None], bool], asyncio.Future[Body | None]]]] = {}

    # ---- reads -----------------------------------------------------------------------------------------

    @property
    def path(self) -> str:
        return self.resource.path(self.namespace)

    def get(self, namespace: str, name: str) -> Body | None:
        """A copy of the stored object, or None when there is none (check `synced` first: before it, None
        means nothing)."""
        raw = self._store.get((namespace, name))
        return None if raw is None else _decode(raw)

    def items(self, namespace: str | None = None) -> list[Body]:
        """Stored objects, of one namespace or all."""
        if namespace is None:
            return [_decode(raw) for raw in self._store.values()]
        return [_decode(self._store[(namespace, name)]) for name in self._by_namespace.get(namespace, ())]

    def __len__(self) -> int:
        return len(self._store)

    async def wait_for(
        self, namespace: str, name: str, predicate: Callable[[Body | None], bool], *, timeout_seconds: float
    ) -> Body | None:
        """The object once `predicate(object or None when absent)` holds, as the watch delivers it.

        Checked now and after every change of that object; raises TimeoutError after `timeout_seconds`.
        """
        key = (namespace, name)
        current = self.get(namespace, name)
        if self.synced.is_set() and predicate(current):
            return current
        future: asyncio.Future[Body | None] = asyncio.get_running_loop().create_future()
        entry = (predicate, future)
        self._waiters.setdefault(key, []).append(entry)
        try:
            async with asyncio.timeout(timeout_seconds):
                return await future
        finally:
            waiters = self._waiters.get(key, [])
            if entry in waiters:
                waiters.remove(entry)
            if not waiters:
                self._waiters.pop(key, None)

    # ---- the store -------------------------------------------------------------------------------------

    def _put(self, obj: Body) -> None:
        key = _key(obj)
        if key is None:
            return
        self._store[key] = _encode(obj)
        self._by_namespace[key[0]].add(key[1])
        self._notify(key, obj)

    def _delete(self, obj: Body) -> None:
        key = _key(obj)
        if key is None:
            return
        self._forget(key)

    def _forget(self, key: Key) -> None:
        self._store.pop(key, None)
        names = self._by_namespace.get(key[0])
        if names is not None:
            names.discard(key[1])
            if not names:
                del self._by_namespace[key[0]]
        self._notify(key, None)

    def _replace(self, objects: Iterable[Body]) -> None:
        fresh: dict[Key, bytes] = {}
        for obj in objects:
            key = _key(obj)
            if key is not None:
                fresh[key] = _encode(obj)
        self._replace_encoded(fresh)

    def _replace_encoded(self, fresh: dict[Key, bytes]) -> None:
        for key in [k for k in self._store if k not in fresh]:
            self._forget(key)
        for key, raw in fresh.items():
            self._store[key] = raw
            self._by_namespace[key[0]].add(key[1])
            if key in self._waiters:
                self._notify(key, _decode(raw))

    def _notify(self, key: Key, obj: Body | None) -> None:
        for predicate, future in list(self._waiters.get(key, ())):
            if future.done():
                continue
            try:
                if predicate(obj):
                    future.set_result(obj)
            except Exception as e:  # a reader's predicate failing must not stop the informer
                future.set_exception(e)

    # ---- list and watch --------------------------------------------------------------------------------

    def _selector(self) -> list[tuple[str, str]]:
        return [("fieldSelector", self.field_selector)] if self.field_selector else []

    async def _list(self) -> None:
        # Each page is encoded and dropped before the next is asked for: holding every page's parsed objects
        # until the end made the list's peak, and so the process's RSS, several times the cache's own size.
        fresh: dict[Key, bytes] = {}
        token = ""
        while True:
            query = [*self._selector(), ("limit", str(LIST_PAGE))]
            if token:
                query.append(("continue", token))
            try:
                page = await self.kube.request("GET", self.path, query=query, verb="list")
            except errors.KubeError as e:
                if e.status == 410 and token:
                    # The continue token expired between pages: start the list over.
                    fresh, token = {}, ""
                    continue
                raise
            for item in page.get("items") or []:
                key = _key(item) if isinstance(item, dict) else None
                if key is not None:
                    fresh[key] = _encode(item)
            metadata = page.get("metadata") or {}
            token = metadata.get("continue") or ""
            del page
            if not token:
                break
        self.lists += 1
        self._replace_encoded(fresh)
        self.resource_version = str(metadata.get("resourceVersion") or "")
        self.synced.set()
        for (namespace, name), waiters in list(self._waiters.items()):
            # A waiter registered before the first list: tell it what the list found.
            if waiters:
                self._notify((namespace, name), self.get(namespace, name))

    async def _watch(self) -> None:
        low, high = WATCH_SECONDS
        seconds = self._rng.randint(low, high)
        query = [
            *self._selector(),
            ("resourceVersion", self.resource_version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(seconds)),
        ]
        self.watches += 1
        try:
            async with self.kube.watch(self.path, query=query, timeout_seconds=seconds + 30) as events:
                self.last_error = ""
                async for event in events:
                    self._apply(event)
        except errors.KubeError as e:
            if e.status == 410:
                raise _Gone(str(e)) from e
            raise

    def _apply(self, event: Body) -> None:
        kind = event.get("type")
        obj = event.get("object")
        if not isinstance(obj, dict):
            return
        if kind == "ERROR":
            # A Status in the stream: 410 Gone (compacted) means list again; anything else ends this watch.
            code = obj.get("code")
            if code == 410:
                raise _Gone(str(obj.get("message", "")))
            raise errors.KubeUnavailable(
                f"watch {self.path}: {obj.get('message', obj)}"[:500], status=int(code or 0)
            )
        version = _version(obj)
        if kind in ("ADDED", "MODIFIED"):
            self._put(obj)
        elif kind == "DELETED":
            self._delete(obj)
        # BOOKMARK: only its resourceVersion is news.
        if version:
            self.resource_version = version

    async def run(self) -> None:
        """List, then watch for ever; re-watch from the last resourceVersion, re-list after 410 Gone."""
        failures = 0
        must_list = not self.synced.is_set()
        while True:
            try:
                if must_list:
                    await self._list()
                    must_list = False
                await self._watch()
                failures = 0
                continue  # the server ended the watch (its timeoutSeconds): watch again from where it was
            except asyncio.CancelledError:
                raise
            except _Gone as e:
                logger.info(
                    "watch expired: listing again",
                    extra={"resource": self.resource.plural, "namespace": self.namespace, "reason": str(e)},
                )
                must_list = True
                continue
            except Exception as e:  # an informer outlives any one failure; readers fall back to the API
                failures += 1
                self.last_error = f"{type(e).__name__}: {e}"[:500]
                if isinstance(e, errors.KubeForbidden | errors.KubeNotFound):
                    # Not a passing failure (RBAC without `watch`, or the API went away): this copy would never
                    # be current again, so readers go to the API server until a new list has succeeded.
                    self.synced.clear()
                    must_list = True
                level = logging.WARNING if failures in (1, 10) or failures % 100 == 0 else logging.DEBUG
                logger.log(
                    level,
                    "list or watch failed: retrying",
                    extra={
                        "resource": self.resource.plural,
                        "namespace": self.namespace,
                        "error": self.last_error,
                        "failures": failures,
                    },
                )
            low, high = BACKOFF_SECONDS
            pause = min(high, low * 2 ** min(failures - 1, 10))
            await self._sleep(pause * (0.5 + self._rng.random()))


class Informers:
    """One informer per (resource, namespace): the whole cluster, or each of `namespaces`."""

    def __init__(
        self,
        kube: client.Kube,
        *,
        namespaces: Sequence[str] = (),
        resources: Sequence[Resource] = RESOURCES,
    ) -> None:
        self.kube = kube
        self.namespaces = tuple(namespaces)
        scopes: tuple[str | None, ...] = self.namespaces or (None,)
        self._informers = {
            (resource, namespace): Informer(kube, resource=resource, namespace=namespace)
            for resource in resources
            for namespace in scopes
        }
        self._tasks: list[asyncio.Task[None]] = []
        self._resources = {(resource.prefix, resource.plural): resource for resource in resources}

    def start(self) -> None:
        for (resource, namespace), informer in self._informers.items():
            name = f"informer-{resource.plural}" + (f"-{namespace}" if namespace else "")
            self._tasks.append(asyncio.create_task(informer.run(), name=name))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def wait_synced(self, timeout_seconds: float) -> bool:
        """Whether every informer has listed once within `timeout_seconds`."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_seconds):
                for informer in self._informers.values():
                    await informer.synced.wait()
                return True
        return False

    def _place(self, path: str) -> tuple[Informer, str, str] | None:
        """The synced informer covering an object's API path, and the object's namespace and name."""
        head, sep, name = path.rpartition("/")
        if not sep or not name:
            return None
        prefix, sep, rest = head.partition("/namespaces/")
        if not sep:
            return None
        namespace, sep, plural = rest.partition("/")
        resource = self._resources.get((prefix, plural)) if sep and "/" not in plural else None
        if resource is None:
            return None
        namespace = urllib.parse.unquote(namespace)
        informer = self.informer(resource, namespace)
        return None if informer is None else (informer, namespace, urllib.parse.unquote(name))

    def lookup(self, path: str) -> tuple[bool, Body | None]:
        """(known, object) for an object's API path (`/apis/apps/v1/namespaces/ns/deployments/name`);
        `known` is False for a path no synced informer covers (a subresource, another resource or namespace).

        The object is a copy: the reader may change it.
        """
        place = self._place(path)
        if place is None:
            return False, None
        informer, namespace, name = place
        return True, informer.get(namespace, name)

    async def wait_for(
        self, path: str, until: Callable[[Body | None], bool], *, timeout_seconds: float
    ) -> bool | None:
        """Wait until the object at `path` satisfies `until` (None: absent) as the watch shows it: True when it
        did within `timeout_seconds`, False when not; None at once when no synced informer covers the path."""
        place = self._place(path)
        if place is None:
            return None
        informer, namespace, name = place
        try:
            await informer.wait_for(namespace, name, until, timeout_seconds=timeout_seconds)
        except TimeoutError:
            return False
        return True

    def informer(self, resource: Resource, namespace: str) -> Informer | None:
        """The synced informer holding `namespace`'s objects of `resource`; None when there is none yet (the
        reader then asks the API server)."""
        informer = self._informers.get((resource, namespace if self.namespaces else None))
        if informer is None or not informer.synced.is_set():
            return None
        return informer

    def get(self, resource: Resource, namespace: str, name: str) -> tuple[bool, Body | None]:
        """(known, object): `known` is False when no synced informer covers it (ask the API server)."""
        informer = self.informer(resource, namespace)
        if informer is None:
            return False, None
        return True, informer.get(namespace, name)

    def items(self, resource: Resource, namespace: str) -> list[Body] | None:
        """The namespace's objects of `resource`; None when no synced informer covers it."""
        informer = self.informer(resource, namespace)
        return None if informer is None else informer.items(namespace)

    def status(self) -> dict[str, Any]:
        """Per informer: objects held, synced or not, the last error: for /readyz and the benchmarks."""
        return {
            resource.path(namespace): {
                "synced": informer.synced.is_set(),
                "objects": len(informer),
                "lists": informer.lists,
                "watches": informer.watches,
                **({"error": informer.last_error} if informer.last_error else {}),
            }
            for (resource, namespace), informer in self._informers.items()
        }

    def __len__(self) -> int:
        return sum(len(informer) for informer in self._informers.values())
