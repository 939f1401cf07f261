"""The transport for kubeconfig users authenticated by an `exec` or `auth-provider` plugin: kubernetes-asyncio.

Stage: kube edge. kubernetes-asyncio is imported here only when such a kubeconfig is used (it loads ~860 generated
modules, ~33 MB); its loader is kept in `PluginRefresher`, so the plugin runs again before its token expires and
after a 401 (the refused request is then retried once). `ApiClientTransport` answers every HTTP status as a
`transports.Answer` and cannot stream. It does not throttle, retry, count or map statuses to errors:
`responder.kube.client` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from responder.kube import credentials, errors, kubeconfigs, transports

__all__ = ["ApiClientTransport", "PluginRefresher"]

logger = logging.getLogger(__name__)

_OK = {200: "object", 201: "object", 202: "object"}


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
    ) -> transports.Answer:
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
            return transports.Answer(
                status=int(e.status or 0), data=e.body, headers=e.headers or {}, reason=str(e.reason or "")
            )
        return transports.Answer(status=int(status), data=data, headers=headers or {})

    async def send(
        self,
        method: str,
        path: str,
        *,
        params: list[tuple[str, str]],
        body: Any,
        content_type: str,
        timeout_seconds: float,
    ) -> transports.Answer:
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
    ) -> transports.Answer:
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
            return transports.Answer(
                status=int(e.status or 0), data=e.body, headers=e.headers or {}, reason=str(e.reason or "")
            )
        raw = data.encode() if isinstance(data, str) else bytes(data or b"")
        return transports.Answer(status=int(status), data=raw[:limit_bytes], headers=headers or {})

    def connect_websocket(
        self, path: str, *, params: list[tuple[str, str]], protocols: Sequence[str], timeout_seconds: float
    ) -> Any:
        raise transports.StreamingUnsupported(
            "exec needs the service's own transport; this kubeconfig authenticates through a plugin"
        )

    def open_lines(
        self, path: str, *, params: list[tuple[str, str]], timeout_seconds: float
    ) -> contextlib.AbstractAsyncContextManager[transports.Lines]:
        raise transports.StreamingUnsupported(
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
