"""An in-memory API server behind the `responder.kube.client.Transport` interface, for unit tests of the edges.

The real client (status mapping, retries, throttle, metrics) runs unchanged above it; only the HTTP hop is
replaced. It keeps objects by path and implements what the service relies on: GET of an object or a
collection, strategic-merge PATCH (maps merged, `containers` merged by name, null deletes) with the
`metadata.resourceVersion` precondition (409), `dryRun=All` (validated, not stored), POST creates (Events,
ConfigMaps, dry-run pods, evictions), PUT with the precondition. Failures are injected per method and path
prefix (`fail`). Every request is recorded. The integration suites use the real kube-apiserver instead.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import itertools
import json
from collections.abc import Mapping
from typing import Any

from responder import metrics as metrics_mod
from responder.kube import client
from responder.models import settings

__all__ = ["FakeApi", "Request", "kube_on"]


@dataclasses.dataclass(frozen=True)
class Request:
    method: str
    path: str
    params: tuple[tuple[str, str], ...]
    body: Any
    content_type: str

    @property
    def dry_run(self) -> bool:
        return ("dryRun", "All") in self.params


def _status(code: int, message: str, reason: str = "", **extra: Any) -> client.Answer:
    body = {
        "kind": "Status",
        "status": "Failure",
        "code": code,
        "message": message,
        "reason": reason,
        **extra,
    }
    # An error answer carries its raw body, as the real transport hands it over.
    return client.Answer(status=code, data=json.dumps(body).encode(), headers={})


def _merge(base: Any, patch: Any) -> Any:
    if not isinstance(patch, Mapping) or not isinstance(base, Mapping):
        return copy.deepcopy(patch)
    merged = dict(base)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif key == "containers" and isinstance(value, list) and isinstance(merged.get(key), list):
            by_name = {c.get("name"): c for c in merged[key]}
            for item in value:
                by_name[item.get("name")] = _merge(by_name.get(item.get("name"), {}), item)
            merged[key] = list(by_name.values())
        else:
            merged[key] = _merge(merged.get(key), value)
    return merged


class FakeApi:
    """Objects by path; `fail[(method, path_prefix)]` holds answers given (and used up) before any real one."""

    def __init__(self, *, suspends: bool = False) -> None:
        """`suspends`: every request lets other tasks run first, as a request to a real server does (so that
        callers waiting behind it can queue up)."""
        self.suspends = suspends
        self.objects: dict[str, dict[str, Any]] = {}
        self.requests: list[Request] = []
        self.fail: dict[tuple[str, str], list[client.Answer]] = {}
        self._versions = itertools.count(100)

    # ---- setting up --------------------------------------------------------------------------------------

    def put_object(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        stored = copy.deepcopy(dict(body))
        metadata = stored.setdefault("metadata", {})
        metadata["resourceVersion"] = str(next(self._versions))
        metadata.setdefault("generation", 1)
        metadata.setdefault("uid", f"uid-{path.rsplit('/', 1)[-1]}")
        self.objects[path] = stored
        return stored

    def refuse(
        self, method: str, path_prefix: str, code: int, message: str, times: int = 1, **extra: Any
    ) -> None:
        """Answer the next `times` matching requests with an error Status."""
        self.fail.setdefault((method, path_prefix), []).extend(
            [_status(code, message, **extra) for _ in range(times)]
        )

    def sent(self, method: str, path_prefix: str = "") -> list[Request]:
        return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]

    # ---- the Transport interface -------------------------------------------------------------------------

    async def send(
        self,
        method: str,
        path: str,
        *,
        params: list[tuple[str, str]],
        body: Any,
        content_type: str,
        timeout_seconds: float,
    ) -> client.Answer:
        request = Request(method, path, tuple(params), copy.deepcopy(body), content_type)
        self.requests.append(request)
        if self.suspends:
            await asyncio.sleep(0)
        for (fail_method, prefix), answers in self.fail.items():
            if fail_method == method and path.startswith(prefix) and answers:
                return answers.pop(0)
        if method == "GET":
            return self._get(path)
        if method == "PATCH":
            return self._patch(request)
        if method == "POST":
            return self._create(request)
        if method == "PUT":
            return self._put(request)
        return _status(405, f"{method} not supported by the fake")

    async def close(self) -> None:
        return None

    def _get(self, path: str) -> client.Answer:
        if path in self.objects:
            return client.Answer(status=200, data=copy.deepcopy(self.objects[path]), headers={})
        items = [copy.deepcopy(body) for key, body in self.objects.items() if key.startswith(path + "/")]
        if items or path.endswith("s"):
            return client.Answer(status=200, data={"items": items}, headers={})
        return _status(404, f"{path} not found", "NotFound")

    def _precondition(self, stored: Mapping[str, Any], body: Any) -> client.Answer | None:
        wanted = ((body or {}).get("metadata") or {}).get("resourceVersion")
        if wanted is not None and wanted != stored["metadata"]["resourceVersion"]:
            return _status(
                409,
                "the object has been modified; please apply your changes to the latest version",
                "Conflict",
            )
        return None

    def _patch(self, request: Request) -> client.Answer:
        stored = self.objects.get(request.path)
        if stored is None:
            return _status(404, f"{request.path} not found", "NotFound")
        conflict = self._precondition(stored, request.body)
        if conflict is not None:
            return conflict
        merged = _merge(stored, request.body)
        if request.dry_run:
            return client.Answer(status=200, data=merged, headers={})
        merged["metadata"]["resourceVersion"] = str(next(self._versions))
        if merged.get("spec") != stored.get("spec"):
            merged["metadata"]["generation"] = int(stored["metadata"].get("generation") or 1) + 1
        self.objects[request.path] = merged
        return client.Answer(status=200, data=copy.deepcopy(merged), headers={})

    def _put(self, request: Request) -> client.Answer:
        stored = self.objects.get(request.path)
        if stored is None:
            return _status(404, f"{request.path} not found", "NotFound")
        conflict = self._precondition(stored, request.body)
        if conflict is not None:
            return conflict
        return client.Answer(status=200, data=self.put_object(request.path, request.body), headers={})

    def _create(self, request: Request) -> client.Answer:
        body = request.body or {}
        if request.path.endswith("/eviction"):
            pod = request.path.removesuffix("/eviction")
            if pod not in self.objects:
                return _status(404, f"{pod} not found", "NotFound")
            if not request.dry_run:
                del self.objects[pod]
            return client.Answer(status=201, data={"kind": "Status", "status": "Success"}, headers={})
        name = (body.get("metadata") or {}).get("name") or (
            (body.get("metadata") or {}).get("generateName", "obj-") + str(next(self._versions))
        )
        path = f"{request.path}/{name}"
        if path in self.objects:
            return _status(409, f"{path} already exists", "AlreadyExists")
        if request.dry_run:
            return client.Answer(status=201, data=copy.deepcopy(body), headers={})
        return client.Answer(status=201, data=copy.deepcopy(self.put_object(path, body)), headers={})


def kube_on(api: FakeApi, *, metrics: metrics_mod.Metrics | None = None, **kubernetes: Any) -> client.Kube:
    """A real `Kube` that talks to `api`, retrying without sleeping."""

    async def no_sleep(_: float) -> None:
        return None

    return client.Kube(
        settings=settings.KubernetesSettings(**kubernetes),
        metrics=metrics or metrics_mod.Metrics(),
        transport=api,
        sleep=no_sleep,
    )
