"""The service's one door to the Kubernetes API.

Stage: kube edge. `Kube` sends raw JSON requests by path: bodies and answers are the API's own camelCase
dicts, the same shape the pure planning code reads and builds. Credentials come from `responder.kube.credentials`
(a kubeconfig file and context, in-cluster credentials, or the default kubeconfig) and requests go out over the
service's own aiohttp transport; only a kubeconfig whose user authenticates through an `exec` or
`auth-provider` plugin is handed to kubernetes-asyncio, imported then and only then (it loads ~860 generated
modules, ~33 MB); its loader is kept, so the plugin runs again before its token expires and after a 401 (the
refused request is then retried once; a token file is likewise re-read after a 401). Every request waits for
the client-side throttle, carries a timeout, is counted in `oom_responder_kube_requests_total{verb,resource,
code}`, is retried for passing failures (`responder.kube.retrying`)
and fails with `responder.kube.errors` only. It decides nothing about incidents.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp

from responder import metrics as metrics_mod
from responder.kube import credentials, errors, kubeconfigs, retrying, throttling
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

USER_AGENT = "oom-responder"

_VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
_OK = {200: "object", 201: "object", 202: "object"}

NoCredentials = credentials.NoCredentials
"""No cluster to talk to: no kubeconfig found and not running in a pod (or the kubeconfig is unusable)."""

UnusableCredentials = credentials.UnusableCredentials
"""Credentials are configured but broken; the message says what is broken."""


@dataclasses.dataclass(frozen=True)
class Answer:
    """One HTTP answer: `data` is the parsed JSON for a 2xx, the raw body otherwise (for the error)."""

    status: int
    data: Any
    headers: Mapping[str, str]
    reason: str = ""


class Transport(Protocol):
    """Sends one request. Answers every HTTP status; raises aiohttp.ClientError or TimeoutError when there
    was no answer."""

    async def send(
        self,
        method: str,
        path: str,
        *,
        params: list[tuple[str, str]],
        body: Any,
        content_type: str,
        timeout_seconds: float,
    ) -> Answer: ...

    async def read_text(
        self, path: str, *, params: list[tuple[str, str]], limit_bytes: int, timeout_seconds: float
    ) -> Answer:
        """GET a text answer (a pod's log); `data` holds at most `limit_bytes` bytes of it, as bytes."""
        ...

    def connect_websocket(
        self, path: str, *, params: list[tuple[str, str]], protocols: Sequence[str], timeout_seconds: float
    ) -> Any:
        """An async context manager yielding an aiohttp websocket (the streaming subresources)."""
        ...

    def open_lines(
        self, path: str, *, params: list[tuple[str, str]], timeout_seconds: float
    ) -> contextlib.AbstractAsyncContextManager[Lines]:
        """GET a streamed answer read line by line (a watch); `timeout_seconds` bounds the whole stream."""
        ...

    async def close(self) -> None: ...


@dataclasses.dataclass(frozen=True)
class Lines:
    """A streamed answer: for a 2xx, `lines` yields it line by line; otherwise `error` holds the body."""

    status: int
    lines: AsyncIterator[bytes]
    headers: Mapping[str, str]
    reason: str = ""
    error: str = ""


async def _split_lines(content: aiohttp.StreamReader, *, max_line_bytes: int) -> AsyncIterator[bytes]:
    # StreamReader.readline() refuses lines over 64 KiB; one watch event is one object, up to etcd's 1.5 MB.
    pending = b""
    async for chunk in content.iter_any():
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            if line:
                yield line
        if len(pending) > max_line_bytes:
            raise ValueError(f"a streamed line exceeds {max_line_bytes} bytes")
    if pending:
        yield pending


class StreamingUnsupported(Exception):
    """This transport cannot stream: kubeconfig users authenticated by a plugin go through kubernetes-asyncio,
    which offers no websocket here."""


async def _read_up_to(stream: aiohttp.StreamReader, limit_bytes: int) -> bytes:
    """At most `limit_bytes` of a streamed body, to its end: `read(n)` returns what has arrived so far, and a
    log is streamed in chunks."""
    chunks: list[bytes] = []
    size = 0
    while size < limit_bytes:
        chunk = await stream.read(limit_bytes - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


class AiohttpTransport:
    """The service's own transport: one aiohttp session to one API server."""

    def __init__(self, creds: credentials.Credentials, *, pool_size: int = 100) -> None:
        self.credentials = creds
        # No context means an http:// server (a local proxy); True is aiohttp's default and is not used there.
        connector = aiohttp.TCPConnector(ssl=creds.ssl_context or True, limit=pool_size)
        self.session = aiohttp.ClientSession(
            connector=connector,
            headers={"Accept": "application/json", "User-Agent": USER_AGENT},
            # A body's Content-Type is set per call (JSON, merge, strategic-merge or JSON patch), never guessed.
            skip_auto_headers=("Content-Type",),
            # HTTPS_PROXY / NO_PROXY from the environment, as client-go and kubernetes-asyncio honour them.
            trust_env=True,
        )

    async def send(
        self,
        method: str,
        path: str,
        *,
        params: list[tuple[str, str]],
        body: Any,
        content_type: str,
        timeout_seconds: float,
    ) -> Answer:
        arguments: dict[str, Any] = {
            "params": params,
            "body": body,
            "content_type": content_type,
            "timeout_seconds": timeout_seconds,
        }
        answer = await self._send(method, path, **arguments)
        # A token file replaced just now (a rotated projected token) is read again at once and the request
        # retried once; a fixed token or certificate has nothing to renew.
        if answer.status == 401 and self.credentials.reload_token():
            answer = await self._send(method, path, **arguments)
        return answer

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: list[tuple[str, str]],
        body: Any,
        content_type: str,
        timeout_seconds: float,
    ) -> Answer:
        headers: dict[str, str] = {}
        authorization = self.credentials.authorization()
        if authorization:
            headers["Authorization"] = authorization
        data: bytes | None = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
        extra: dict[str, Any] = {}
        if self.credentials.tls_server_name:
            extra["server_hostname"] = self.credentials.tls_server_name
        if self.credentials.proxy_url:
            extra["proxy"] = self.credentials.proxy_url
        async with self.session.request(
            method,
            self.credentials.server + path,
            params=params or None,
            data=data,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout_seconds),
            allow_redirects=False,
            **extra,
        ) as response:
            raw = await response.read()
            status = response.status
            if 200 <= status < 300:
                try:
                    parsed: Any = json.loads(raw) if raw else {}
                except ValueError:
                    parsed = {}
                return Answer(
                    status=status, data=parsed, headers=response.headers, reason=response.reason or ""
                )
            return Answer(
                status=status,
                data=raw.decode("utf-8", "replace"),
                headers=response.headers,
                reason=response.reason or "",
            )

    def _extra(self) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self.credentials.tls_server_name:
            extra["server_hostname"] = self.credentials.tls_server_name
        if self.credentials.proxy_url:
            extra["proxy"] = self.credentials.proxy_url
        return extra

    def _auth_headers(self) -> dict[str, str]:
        authorization = self.credentials.authorization()
        return {"Authorization": authorization} if authorization else {}

    async def read_text(
        self, path: str, *, params: list[tuple[str, str]], limit_bytes: int, timeout_seconds: float
    ) -> Answer:
        async with self.session.get(
            self.credentials.server + path,
            params=params or None,
            headers={**self._auth_headers(), "Accept": "*/*"},
            timeout=aiohttp.ClientTimeout(total=timeout_seconds),
            allow_redirects=False,
            **self._extra(),
        ) as response:
            status = response.status
            if 200 <= status < 300:
                # The server's limitBytes bounds the answer already; this bounds what a server that ignores
                # it could make the service hold.
                raw = await _read_up_to(response.content, limit_bytes)
                return Answer(status=status, data=raw, headers=response.headers, reason=response.reason or "")
            body = await response.content.read(64 * 1024)
            return Answer(
                status=status,
                data=body.decode("utf-8", "replace"),
                headers=response.headers,
                reason=response.reason or "",
            )

    def connect_websocket(
        self, path: str, *, params: list[tuple[str, str]], protocols: Sequence[str], timeout_seconds: float
    ) -> Any:
        return self.session.ws_connect(
            self.credentials.server + path,
            params=params,
            protocols=tuple(protocols),
            headers=self._auth_headers(),
            timeout=aiohttp.ClientWSTimeout(ws_close=min(timeout_seconds, 10.0)),
            autoping=True,
            # Frames carry one channel byte plus a chunk of output; the kubelet sends at most 32 KiB at a time.
            max_msg_size=1024 * 1024,
            **self._extra(),
        )

    @contextlib.asynccontextmanager
    async def open_lines(
        self, path: str, *, params: list[tuple[str, str]], timeout_seconds: float
    ) -> AsyncIterator[Lines]:
        async with self.session.get(
            self.credentials.server + path,
            params=params or None,
            headers=self._auth_headers(),
            timeout=aiohttp.ClientTimeout(total=timeout_seconds),
            allow_redirects=False,
            **self._extra(),
        ) as response:
            status = response.status
            if 200 <= status < 300:
                lines = _split_lines(response.content, max_line_bytes=MAX_STREAMED_LINE_BYTES)
                yield Lines(
                    status=status, lines=lines, headers=response.headers, reason=response.reason or ""
                )
                return
            body = await response.content.read(64 * 1024)
            yield Lines(
                status=status,
                lines=_no_lines(),
                headers=response.headers,
                reason=response.reason or "",
                error=body.decode("utf-8", "replace"),
            )

    async def close(self) -> None:
        await self.session.close()


class PluginRefresher:
    """Keeps kubernetes-asyncio's kubeconfig loader for the client's whole life, so that what an `exec` or
    `auth-provider` plugin returned is renewed: before a request when the plugin's token is about to expire
    (its `expirationTimestamp`, with the library's own five-minute margin), every minute for an auth-provider
    (the library checks the provider's expiry itself), and at once after a 401 (the token was revoked or the
    plugin gave no expiry: client-go keeps such a token until the server refuses it)."""

    AUTH_PROVIDER_CHECK_SECONDS = 60.0

    def __init__(
        self, loader: Any, configuration: Any, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.loader = loader
        self.configuration = configuration
        self.refreshes = 0
        self.refreshes_after_401 = 0
        self._clock = clock
        self._checked_at = clock()
        self._lock = asyncio.Lock()

    @property
    def token(self) -> str | None:
        value = self.configuration.api_key.get("BearerToken")
        return str(value) if value else None

    def _is_exec(self) -> bool:
        user = getattr(self.loader, "_user", None)
        return user is not None and "exec" in user

    def is_due(self) -> bool:
        """Whether the credential must be renewed before the next request."""
        if self._is_exec():
            from kubernetes_asyncio.config import kube_config  # noqa: PLC0415 - loaded on this path already

            expiry = getattr(self.loader, "exec_plugin_expiry", None)
            if not isinstance(expiry, datetime.datetime):
                return False  # no stated expiry: kept until a 401, as client-go does
            margin = kube_config.EXPIRY_SKEW_PREVENTION_DELAY
            return expiry - margin <= datetime.datetime.now(datetime.UTC)
        return self._clock() - self._checked_at >= self.AUTH_PROVIDER_CHECK_SECONDS

    async def refresh(self, *, refused: str | None = None) -> None:
        """Renew the credential. `refused` is the Authorization value a 401 came back for: when another
        request renewed it meanwhile, the plugin is not run again."""
        async with self._lock:
            if refused is not None:
                if self.token != refused:
                    return
                # The token was refused before its stated expiry: forget the expiry so the plugin runs.
                with contextlib.suppress(AttributeError):
                    del self.loader.exec_plugin_expiry
            elif not self.is_due():
                return
            try:
                await self.loader.load_and_set(self.configuration)
            except Exception as e:
                # A plugin failing now (its identity provider unreachable) may pass: retried like any
                # unanswered request, and never raised into the caller as anything but a KubeError.
                raise errors.KubeUnavailable(
                    f"kubeconfig plugin failed: {type(e).__name__}: {e}"[:500]
                ) from e
            self._checked_at = self._clock()
            self.refreshes += 1
            self.refreshes_after_401 += refused is not None
            logger.info(
                "kubernetes credentials renewed through the kubeconfig plugin",
                extra={"after_401": refused is not None},
            )


async def _no_lines() -> AsyncIterator[bytes]:
    return
    yield b""  # an async generator that yields nothing


MAX_STREAMED_LINE_BYTES = 4 * 1024 * 1024
"""Longest watch event read (etcd stores objects up to 1.5 MB; JSON of one is at most a few MB)."""


class ApiClientTransport:
    """A kubernetes-asyncio `ApiClient` as transport: for kubeconfig users that authenticate through a plugin
    (the library runs `exec` and `auth-provider`; `PluginRefresher` renews what they return and a 401 is
    retried once after renewing), and for callers that already hold an ApiClient."""

    def __init__(self, api: Any, *, refresher: PluginRefresher | None = None) -> None:
        self.api = api
        self.refresher = refresher

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: list[tuple[str, str]],
        body: Any,
        content_type: str,
        timeout_seconds: float,
    ) -> Answer:
        from kubernetes_asyncio.client.exceptions import ApiException  # noqa: PLC0415 - only on this path

        try:
            data, status, headers = await self.api.call_api(
                path,
                method,
                query_params=params,
                header_params={"Accept": "application/json", "Content-Type": content_type},
                body=body,
                response_types_map=_OK,
                auth_settings=["BearerToken"],
                _return_http_data_only=False,
                _request_timeout=timeout_seconds,
            )
        except ApiException as e:
            return Answer(
                status=int(e.status or 0), data=e.body, headers=e.headers or {}, reason=str(e.reason or "")
            )
        return Answer(status=int(status), data=data, headers=headers or {})

    async def send(
        self,
        method: str,
        path: str,
        *,
        params: list[tuple[str, str]],
        body: Any,
        content_type: str,
        timeout_seconds: float,
    ) -> Answer:
        refresher = self.refresher
        if refresher is not None and refresher.is_due():
            await refresher.refresh()
        used = refresher.token if refresher is not None else None
        answer = await self._send(
            method, path, params=params, body=body, content_type=content_type, timeout_seconds=timeout_seconds
        )
        if answer.status == 401 and refresher is not None and used is not None:
            # Once only: a second 401 with a fresh credential is the server's final word.
            await refresher.refresh(refused=used)
            answer = await self._send(
                method,
                path,
                params=params,
                body=body,
                content_type=content_type,
                timeout_seconds=timeout_seconds,
            )
        return answer

    async def read_text(
        self, path: str, *, params: list[tuple[str, str]], limit_bytes: int, timeout_seconds: float
    ) -> Answer:
        from kubernetes_asyncio.client.exceptions import ApiException  # noqa: PLC0415 - only on this path

        if self.refresher is not None and self.refresher.is_due():
            await self.refresher.refresh()
        try:
            data, status, headers = await self.api.call_api(
                path,
                "GET",
                query_params=params,
                header_params={"Accept": "*/*"},
                response_types_map={200: "str"},
                auth_settings=["BearerToken"],
                _return_http_data_only=False,
                _request_timeout=timeout_seconds,
            )
        except ApiException as e:
            return Answer(
                status=int(e.status or 0), data=e.body, headers=e.headers or {}, reason=str(e.reason or "")
            )
        raw = data.encode() if isinstance(data, str) else bytes(data or b"")
        return Answer(status=int(status), data=raw[:limit_bytes], headers=headers or {})

    def connect_websocket(
        self, path: str, *, params: list[tuple[str, str]], protocols: Sequence[str], timeout_seconds: float
    ) -> Any:
        raise StreamingUnsupported(
            "exec needs the service's own transport; this kubeconfig authenticates through a plugin"
        )

    def open_lines(
        self, path: str, *, params: list[tuple[str, str]], timeout_seconds: float
    ) -> contextlib.AbstractAsyncContextManager[Lines]:
        raise StreamingUnsupported(
            "watching needs the service's own transport; this kubeconfig authenticates through a plugin"
        )

    async def close(self) -> None:
        await self.api.close()

    @classmethod
    async def from_kubeconfig(cls, kubeconfig: kubeconfigs.Kubeconfig, *, context: str) -> ApiClientTransport:
        """kubernetes-asyncio's own loader on the (merged) kubeconfig: runs its `exec`/`auth-provider`
        plugin, and is kept to run it again."""
        from kubernetes_asyncio import client as k8s_client  # noqa: PLC0415 - heavy: only on this path
        from kubernetes_asyncio import config as k8s_config  # noqa: PLC0415

        configuration = k8s_client.Configuration()
        try:
            loader = await k8s_config.load_kube_config_from_dict(
                kubeconfig.to_dict(), context=context, client_configuration=configuration
            )
        except (k8s_config.ConfigException, OSError) as e:
            raise credentials.UnusableCredentials(
                f"{kubeconfig.label} (context {context!r}): plugin failed: {e}"
            ) from e
        return cls(
            k8s_client.ApiClient(configuration=configuration),
            refresher=PluginRefresher(loader, configuration),
        )


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
