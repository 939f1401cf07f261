"""The service's one door to the Kubernetes API.

Stage: kube edge. `Kube` sends raw JSON requests by path: bodies and answers are the API's own camelCase
dicts, the same shape the pure planning code reads and builds. Credentials come from `responder.kube.credentials`
(a kubeconfig file and context, in-cluster credentials, or the default kubeconfig) and requests go out over the
service's own aiohttp transport (`responder.kube.sessions`); only a kubeconfig whose user authenticates through
an `exec` or `auth-provider` plugin is handed to kubernetes-asyncio (`responder.kube.plugins`, which renews what
the plugin returns). Both answer through the interface of `responder.kube.transports`. Every request waits for
the client-side throttle, carries a timeout, is counted in `oom_responder_kube_requests_total{verb,resource,
code}`, is retried for passing failures (`responder.kube.retrying`)
and fails with `responder.kube.errors` only. It decides nothing about incidents.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import aiohttp

from responder import metrics as metrics_mod
from responder.kube import credentials, errors, plugins, retrying, sessions, throttling, transports
from responder.models import settings

if TYPE_CHECKING:
    from responder.kube import informers as informers_mod

__all__ = [
    "JSON_PATCH",
    "MERGE_PATCH",
    "STRATEGIC_MERGE_PATCH",
    "AiohttpTransport",
    "Answer",
    "ApiClientTransport",
    "Body",
    "Kube",
    "Lines",
    "NoCredentials",
    "PluginRefresher",
    "StreamingUnsupported",
    "Transport",
    "UnusableCredentials",
]

logger = logging.getLogger(__name__)

Body = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"

_VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}

# The exception to importing modules, not names: `client` stays the one front of the kube edge, so that the
# layers above and the tests need not know which module each transport lives in.
Answer = transports.Answer
Lines = transports.Lines
Transport = transports.Transport
StreamingUnsupported = transports.StreamingUnsupported
AiohttpTransport = sessions.AiohttpTransport
ApiClientTransport = plugins.ApiClientTransport
PluginRefresher = plugins.PluginRefresher

NoCredentials = credentials.NoCredentials
"""No cluster to talk to: no kubeconfig found and not running in a pod (or the kubeconfig is unusable)."""

UnusableCredentials = credentials.UnusableCredentials
"""Credentials are configured but broken; the message says what is broken."""


def resource_of(path: str) -> str:
    """The resource a request path names, for metrics: `deployments`, `pods/eviction`, `version`.

    Never a namespace or object name: the label set stays as small as the API's own list of resources.
    """
    parts = path.split("?", 1)[0].strip("/").split("/")
    if parts[0] == "api":
        rest = parts[2:]
    elif parts[0] == "apis":
        rest = parts[3:]
    else:
        return parts[0] or "root"
    if len(rest) >= 3 and rest[0] == "namespaces":
        rest = rest[2:]
    if not rest:
        return "discovery"
    return f"{rest[0]}/{rest[2]}" if len(rest) >= 3 else rest[0]


async def _events(lines: AsyncIterator[bytes]) -> AsyncIterator[Body]:
    async for line in lines:
        try:
            event = json.loads(line)
        except ValueError as e:
            raise errors.KubeUnavailable(f"unreadable watch event: {e}") from e
        if isinstance(event, dict):
            yield event


class Kube:
    """Raw JSON access to the API server. Build with `await Kube.connect(...)`; `await close()` once.

    `transport` is what sends; `api` (a kubernetes-asyncio ApiClient) is accepted instead of it and wrapped in
    an `ApiClientTransport`.
    """

    def __init__(
        self,
        *,
        settings: settings.KubernetesSettings,
        metrics: metrics_mod.Metrics,
        transport: Transport | None = None,
        api: Any = None,
        throttle: throttling.Throttle | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if transport is None:
            if api is None:
                raise TypeError("Kube needs a transport or an api client")
            transport = ApiClientTransport(api)
        self.transport = transport
        self.settings = settings
        self.metrics = metrics
        self.throttle = throttle or throttling.Throttle(qps=settings.qps, burst=settings.burst)
        self._sleep = sleep
        self.informers: informers_mod.Informers | None = None
        """The watch-fed cache reads may be answered from (`responder.kube.fetching`); None: every read asks."""
        self.conflicted: set[str] = set()
        """Object paths a write was answered 409 on: their next read goes to the API server, never the cache
        (a conflict means the copy the write was based on is stale; the cache may be just as stale)."""

    @classmethod
    async def connect(cls, *, settings: settings.KubernetesSettings, metrics: metrics_mod.Metrics) -> Kube:
        """Credentials from the configured kubeconfig, else in-cluster, else the default kubeconfig."""
        transport: Transport
        try:
            found = credentials.load(settings)
        except credentials.NeedsPlugin as e:
            transport = await ApiClientTransport.from_kubeconfig(e.kubeconfig, context=e.context)
            logger.info("kubernetes credentials: %s (through kubernetes-asyncio)", e)
        else:
            transport = AiohttpTransport(found)
            logger.debug("kubernetes credentials: %s", found.source)
        return cls(transport=transport, settings=settings, metrics=metrics)

    async def close(self) -> None:
        await self.transport.close()

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
        resource = resource_of(path)
        params = list(query.items()) if isinstance(query, Mapping) else list(query or [])

        async def attempt() -> Body:
            await self.throttle.acquire()
            try:
                answer = await self.transport.send(
                    method,
                    path,
                    params=params,
                    body=body,
                    content_type=content_type,
                    timeout_seconds=self.settings.request_timeout_seconds,
                )
            except (aiohttp.ClientError, TimeoutError) as e:
                self.metrics.kube_requests.labels(verb=label, resource=resource, code="0").inc()
                raise errors.KubeUnavailable(f"{method} {path}: {type(e).__name__}: {e}"[:500]) from e
            self.metrics.kube_requests.labels(verb=label, resource=resource, code=str(answer.status)).inc()
            if answer.status == 409 and method in ("PATCH", "PUT"):
                self.conflicted.add(path)
            if not 200 <= answer.status < 300:
                raise errors.from_status(
                    status=answer.status,
                    body=answer.data,
                    headers=answer.headers,
                    reason=answer.reason,
                    eviction=eviction,
                )
            return answer.data if isinstance(answer.data, dict) else {}

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

    async def read_text(self, path: str, *, query: Sequence[tuple[str, str]], limit_bytes: int) -> bytes:
        """GET a text answer such as a pod's log, at most `limit_bytes` of it (retried like any request)."""

        async def attempt() -> bytes:
            await self.throttle.acquire()
            try:
                answer = await self.transport.read_text(
                    path,
                    params=list(query),
                    limit_bytes=limit_bytes,
                    timeout_seconds=self.settings.request_timeout_seconds,
                )
            except (aiohttp.ClientError, TimeoutError) as e:
                self.metrics.kube_requests.labels(verb="get", resource=resource_of(path), code="0").inc()
                raise errors.KubeUnavailable(f"GET {path}: {type(e).__name__}: {e}"[:500]) from e
            self.metrics.kube_requests.labels(
                verb="get", resource=resource_of(path), code=str(answer.status)
            ).inc()
            if not 200 <= answer.status < 300:
                raise errors.from_status(
                    status=answer.status, body=answer.data, headers=answer.headers, reason=answer.reason
                )
            return answer.data if isinstance(answer.data, bytes) else b""

        return await retrying.retrying(attempt, max_attempts=self.settings.max_attempts, sleep=self._sleep)

    @contextlib.asynccontextmanager
    async def watch(
        self, path: str, *, query: Sequence[tuple[str, str]], timeout_seconds: float
    ) -> AsyncIterator[AsyncIterator[Body]]:
        """Open a watch (`watch=1` is added) and yield its events as parsed JSON objects, in order.

        Waits for the throttle once and is counted as one `watch` request; not retried (the informer that
        owns the watch decides what to do: re-watch, or re-list after 410 Gone). Fails with
        `responder.kube.errors` like any request; raises StreamingUnsupported on a transport that cannot
        stream. The stream ends when the server closes it (its `timeoutSeconds`) or after `timeout_seconds`.
        """
        resource = resource_of(path)
        await self.throttle.acquire()
        params = [*query, ("watch", "1")]
        try:
            async with self.transport.open_lines(
                path, params=params, timeout_seconds=timeout_seconds
            ) as answer:
                self.metrics.kube_requests.labels(
                    verb="watch", resource=resource, code=str(answer.status)
                ).inc()
                if not 200 <= answer.status < 300:
                    raise errors.from_status(
                        status=answer.status, body=answer.error, headers=answer.headers, reason=answer.reason
                    )
                yield _events(answer.lines)
        except (aiohttp.ClientError, TimeoutError) as e:
            self.metrics.kube_requests.labels(verb="watch", resource=resource, code="0").inc()
            raise errors.KubeUnavailable(f"watch {path}: {type(e).__name__}: {e}"[:500]) from e

    async def open_stream(
        self, path: str, *, query: Sequence[tuple[str, str]], protocols: Sequence[str]
    ) -> Any:
        """Wait for the throttle and return the transport's websocket context manager for a streaming
        subresource (pods/exec). The caller counts the answer and owns the stream's timeout."""
        await self.throttle.acquire()
        return self.transport.connect_websocket(
            path,
            params=list(query),
            protocols=protocols,
            timeout_seconds=self.settings.request_timeout_seconds,
        )
