"""The service's one door to the Kubernetes API.

Stage: kube edge. `Kube` wraps a kubernetes_asyncio `ApiClient` built from `settings.kubernetes` (a kubeconfig
file and context, in-cluster credentials, or ~/.kube/config) and sends raw JSON requests by path: bodies and
answers are the API's own camelCase dicts, the same shape the pure planning code reads and builds. Every
request waits for the client-side throttle, carries a timeout, is counted in
`oom_responder_kube_requests_total{verb,code}`, is retried for passing failures (`responder.kube.retrying`)
and fails with `responder.kube.errors` only. It decides nothing about incidents.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import aiohttp
from kubernetes_asyncio import client as k8s_client
from kubernetes_asyncio import config as k8s_config
from kubernetes_asyncio.client.exceptions import ApiException

from responder import metrics as metrics_mod
from responder.kube import errors, retrying, throttling
from responder.models import settings

__all__ = [
    "JSON_PATCH",
    "MERGE_PATCH",
    "STRATEGIC_MERGE_PATCH",
    "Body",
    "Kube",
    "NoCredentials",
]

Body = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"

_VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
_OK = {200: "object", 201: "object", 202: "object"}


class NoCredentials(Exception):
    """No cluster to talk to: no kubeconfig found and not running in a pod (or the kubeconfig is unusable)."""


class Kube:
    """Raw JSON access to the API server. Build with `await Kube.connect(...)`; `await close()` once."""

    def __init__(
        self,
        *,
        api: Any,
        settings: settings.KubernetesSettings,
        metrics: metrics_mod.Metrics,
        throttle: throttling.Throttle | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.api = api
        self.settings = settings
        self.metrics = metrics
        self.throttle = throttle or throttling.Throttle(qps=settings.qps, burst=settings.burst)
        self._sleep = sleep

    @classmethod
    async def connect(cls, *, settings: settings.KubernetesSettings, metrics: metrics_mod.Metrics) -> Kube:
        """Credentials from the configured kubeconfig, else in-cluster, else the default kubeconfig."""
        configuration = k8s_client.Configuration()
        try:
            if settings.kubeconfig:
                await k8s_config.load_kube_config(
                    config_file=settings.kubeconfig,
                    context=settings.context,
                    client_configuration=configuration,
                )
            elif os.environ.get("KUBERNETES_SERVICE_HOST"):
                # The library leaves this loader unannotated.
                k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            else:
                await k8s_config.load_kube_config(
                    context=settings.context, client_configuration=configuration
                )
        except (k8s_config.ConfigException, OSError) as e:
            raise NoCredentials(str(e)) from e
        return cls(api=k8s_client.ApiClient(configuration=configuration), settings=settings, metrics=metrics)

    async def close(self) -> None:
        await self.api.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        verb: str | None = None,
        eviction: bool = False,
    ) -> Body:
        """Send one request (retried for passing failures) and return the answer's JSON object."""
        label = verb or _VERBS.get(method, method.lower())
        params = list(query.items()) if isinstance(query, Mapping) else list(query or [])

        async def attempt() -> Body:
            await self.throttle.acquire()
            try:
                data, status, _headers = await self.api.call_api(
                    path,
                    method,
                    query_params=params,
                    header_params={"Accept": "application/json", "Content-Type": content_type},
                    body=body,
                    response_types_map=_OK,
                    auth_settings=["BearerToken"],
                    _return_http_data_only=False,
                    _request_timeout=self.settings.request_timeout_seconds,
                )
            except ApiException as e:
                status = int(e.status or 0)
                self.metrics.kube_requests.labels(label, str(status)).inc()
                raise errors.from_status(
                    status=status,
                    body=e.body,
                    headers=e.headers,
                    reason=str(e.reason or ""),
                    eviction=eviction,
                ) from e
            except (aiohttp.ClientError, TimeoutError) as e:
                self.metrics.kube_requests.labels(label, "0").inc()
                raise errors.KubeUnavailable(f"{method} {path}: {type(e).__name__}: {e}"[:500]) from e
            self.metrics.kube_requests.labels(label, str(status)).inc()
            return data if isinstance(data, dict) else {}

        return await retrying.retrying(attempt, max_attempts=self.settings.max_attempts, sleep=self._sleep)

    # ---- conveniences ------------------------------------------------------------------------------------

    async def get(self, path: str, *, query: Mapping[str, str] | None = None) -> Body:
        return await self.request("GET", path, query=query)

    async def list(self, path: str, *, query: Mapping[str, str] | None = None) -> list[Body]:
        answer = await self.request("GET", path, query=query, verb="list")
        items = answer.get("items") or []
        return [item for item in items if isinstance(item, dict)]

    async def patch(
        self, path: str, body: Any, *, content_type: str = STRATEGIC_MERGE_PATCH, dry_run: bool = False
    ) -> Body:
        return await self.request(
            "PATCH", path, body=body, content_type=content_type, query={"dryRun": "All"} if dry_run else None
        )

    async def create(self, path: str, body: Any, *, dry_run: bool = False, eviction: bool = False) -> Body:
        return await self.request(
            "POST", path, body=body, query={"dryRun": "All"} if dry_run else None, eviction=eviction
        )

    async def version(self) -> Body:
        return await self.request("GET", "/version")
