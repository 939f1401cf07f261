"""The service's own transport and kubernetes-asyncio, on the same kubeconfigs, against the real kube-apiserver.

The service reads kubeconfigs and in-cluster credentials itself and talks over its own aiohttp transport; the
project's stack names kubernetes-asyncio. Each case loads the same credentials both ways and checks that both
reach the same API server as the same identity (a SelfSubjectReview: user name and groups) and read the same
/version. Aspects covered: in-cluster (service-account token file and CA from a directory, host and port from
the environment); a token; a tokenFile; client certificate files; client certificate data; an exec plugin;
a proxy-url (both go through a local CONNECT proxy, which counts them); tls-server-name (both accept the name
in the certificate and both refuse one outside it); several files merged from `$KUBECONFIG` (context, cluster
and user in different files, a relative tokenFile resolved against its own file).

Where the two differ on purpose, kubectl is followed: `insecure-skip-tls-verify: "false"` (a string) is refused
by the service, while kubernetes-asyncio reads it as true and skips verification; with several files setting
current-context the first wins (kubectl), kubernetes-asyncio takes the last; a token file ending in a newline
works (kubectl strips it), kubernetes-asyncio sends the newline and fails. All three are shown here.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import stat
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client as k8s_client
from kubernetes_asyncio import config as k8s_config

from responder import metrics as metrics_mod
from responder.kube import client, credentials, errors
from responder.models import settings
from tests.kubeplane import plane as plane_mod

pytestmark = pytest.mark.integration

RULES = [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]
REVIEWS = "/apis/authentication.k8s.io/v1/selfsubjectreviews"


async def _identity(kube: client.Kube) -> tuple[str, str, tuple[str, ...]]:
    """(gitVersion, user name, groups) as the API server sees this client."""
    version = await kube.version()
    review = await kube.create(
        REVIEWS, {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    )
    info = review["status"]["userInfo"]
    return str(version["gitVersion"]), str(info["username"]), tuple(sorted(info.get("groups") or []))


async def _ours(kubeconfig: Path | None = None, *, environ: dict[str, str] | None = None) -> client.Kube:
    """The service's own loading: a configured file, or `$KUBECONFIG` from `environ`."""
    config = settings.KubernetesSettings(kubeconfig=str(kubeconfig) if kubeconfig else None, max_attempts=1)
    found = credentials.load(config, environ=environ or {}, directory=Path("/nonexistent"))
    return client.Kube(
        transport=client.AiohttpTransport(found), settings=config, metrics=metrics_mod.Metrics()
    )


async def _library(config_file: str) -> client.Kube:
    """kubernetes-asyncio's own loading of the same file(s) (`a:b` merged by its KubeConfigMerger)."""
    configuration = k8s_client.Configuration()
    await k8s_config.load_kube_config(
        config_file=config_file, client_configuration=configuration, persist_config=False
    )
    return client.Kube(
        api=k8s_client.ApiClient(configuration=configuration),
        settings=settings.KubernetesSettings(max_attempts=1),
        metrics=metrics_mod.Metrics(),
    )


async def _both(ours: client.Kube, library: client.Kube) -> tuple[Any, Any]:
    try:
        return await _identity(ours), await _identity(library)
    finally:
        await ours.close()
        await library.close()


def _rewrite(source: Path, target: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    document = yaml.safe_load(source.read_text())
    change(document)
    target.write_text(yaml.safe_dump(document))
    return target


def _load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def _b64(path: str) -> str:
    return base64.b64encode(Path(path).read_bytes()).decode()


@pytest.fixture
def token_kubeconfig(namespace: str, service_account_kubeconfig: Callable[..., Path]) -> Path:
    return service_account_kubeconfig(namespace, RULES)


def _token(kubeconfig: Path) -> str:
    return str(yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["token"])


# ---- one kubeconfig, each way of authenticating ----------------------------------------------------------


async def test_client_certificate_files(kube_plane: plane_mod.KubePlane) -> None:
    ours, library = await _both(
        await _ours(kube_plane.kubeconfig), await _library(str(kube_plane.kubeconfig))
    )
    assert ours == library
    assert "system:masters" in ours[2]


async def test_client_certificate_data(kube_plane: plane_mod.KubePlane, tmp_path: Path) -> None:
    def inline(document: dict[str, Any]) -> None:
        cluster, user = document["clusters"][0]["cluster"], document["users"][0]["user"]
        cluster["certificate-authority-data"] = _b64(cluster.pop("certificate-authority"))
        user["client-certificate-data"] = _b64(user.pop("client-certificate"))
        user["client-key-data"] = _b64(user.pop("client-key"))

    path = _rewrite(kube_plane.kubeconfig, tmp_path / "inline", inline)
    ours, library = await _both(await _ours(path), await _library(str(path)))
    assert ours == library


async def test_a_token(token_kubeconfig: Path, namespace: str) -> None:
    ours, library = await _both(await _ours(token_kubeconfig), await _library(str(token_kubeconfig)))
    assert ours == library
    assert ours[1] == f"system:serviceaccount:{namespace}:tester"


async def test_a_token_file_relative_to_the_kubeconfig(token_kubeconfig: Path, tmp_path: Path) -> None:
    # No trailing newline: kubernetes-asyncio sends a token file verbatim (see the differences below).
    (tmp_path / "token").write_text(_token(token_kubeconfig))

    def to_file(document: dict[str, Any]) -> None:
        user = document["users"][0]["user"]
        del user["token"]
        user["tokenFile"] = "token"

    path = _rewrite(token_kubeconfig, tmp_path / "file.kubeconfig", to_file)
    ours, library = await _both(await _ours(path), await _library(str(path)))
    assert ours == library
    assert ours[1].endswith(":tester")


async def test_an_exec_plugin(token_kubeconfig: Path, tmp_path: Path) -> None:
    credential = {
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "kind": "ExecCredential",
        "status": {"token": _token(token_kubeconfig)},
    }
    plugin = tmp_path / "get-token"
    plugin.write_text(f"#!{sys.executable}\nprint({json.dumps(json.dumps(credential))})\n")
    plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR)

    def use_plugin(document: dict[str, Any]) -> None:
        document["users"][0]["user"] = {
            "exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": "./get-token"}
        }

    path = _rewrite(token_kubeconfig, tmp_path / "exec.kubeconfig", use_plugin)
    metrics = metrics_mod.Metrics()
    kube = await client.Kube.connect(
        settings=settings.KubernetesSettings(kubeconfig=str(path)), metrics=metrics
    )
    # A relative command with a slash runs from the kubeconfig's directory (client-go); kubernetes-asyncio
    # runs it from the working directory, so it gets the absolute path here.
    absolute = _rewrite(
        path,
        tmp_path / "exec-absolute.kubeconfig",
        lambda d: d["users"][0]["user"]["exec"].update(command=str(plugin)),
    )
    ours, library = await _both(kube, await _library(str(absolute)))
    assert ours == library
    assert ours[1].endswith(":tester")


async def test_in_cluster_credentials(
    kube_plane: plane_mod.KubePlane, token_kubeconfig: Path, tmp_path: Path
) -> None:
    directory = tmp_path / "serviceaccount"
    directory.mkdir()
    (directory / "token").write_text(_token(token_kubeconfig))
    (directory / "ca.crt").write_bytes(kube_plane.ca_path.read_bytes())
    host, port = kube_plane.server.removeprefix("https://").rsplit(":", 1)
    environ = {"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port}
    found = credentials.in_cluster(environ=environ, directory=directory)
    assert found is not None
    ours_kube = client.Kube(
        transport=client.AiohttpTransport(found),
        settings=settings.KubernetesSettings(),
        metrics=metrics_mod.Metrics(),
    )
    configuration = k8s_client.Configuration()
    k8s_config.incluster_config.InClusterConfigLoader(
        token_filename=str(directory / "token"), cert_filename=str(directory / "ca.crt"), environ=environ
    ).load_and_set(configuration)
    library_kube = client.Kube(
        api=k8s_client.ApiClient(configuration=configuration),
        settings=settings.KubernetesSettings(),
        metrics=metrics_mod.Metrics(),
    )
    ours, library = await _both(ours_kube, library_kube)
    assert ours == library
    assert ours[1].endswith(":tester")


# ---- cluster options ------------------------------------------------------------------------------------


class ConnectProxy:
    """An HTTP CONNECT proxy on loopback that counts the tunnels it opened."""

    def __init__(self) -> None:
        self.tunnels: list[str] = []
        self.server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
        with contextlib.suppress(ConnectionError, OSError):
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._tunnel(reader, writer)
        finally:
            self._handlers.discard(task)

    async def _tunnel(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        method, target, _ = request.split(b"\r\n", 1)[0].decode().split(" ", 2)
        if method != "CONNECT":
            writer.write(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
            writer.close()
            return
        host, port = target.rsplit(":", 1)
        upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
        self.tunnels.append(target)
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        await asyncio.gather(self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer))

    async def __aenter__(self) -> ConnectProxy:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        # Open tunnels (kept alive by the clients' pools) end with the proxy.
        for handler in list(self._handlers):
            handler.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self.server.wait_closed()


@pytest.fixture
async def proxy() -> AsyncIterator[ConnectProxy]:
    async with ConnectProxy() as running:
        yield running


async def test_proxy_url(kube_plane: plane_mod.KubePlane, tmp_path: Path, proxy: ConnectProxy) -> None:
    path = _rewrite(
        kube_plane.kubeconfig,
        tmp_path / "proxied",
        lambda d: d["clusters"][0]["cluster"].update({"proxy-url": proxy.url}),
    )
    server = kube_plane.server.removeprefix("https://")
    ours_kube = await _ours(path)
    try:
        ours = await _identity(ours_kube)
    finally:
        await ours_kube.close()
    assert proxy.tunnels == [server], "the service's transport went around the proxy"
    library_kube = await _library(str(path))
    try:
        library = await _identity(library_kube)
    finally:
        await library_kube.close()
    assert proxy.tunnels == [server, server], "kubernetes-asyncio went around the proxy"
    assert ours == library


async def test_tls_server_name(kube_plane: plane_mod.KubePlane, tmp_path: Path) -> None:
    def named(name: str) -> Callable[[dict[str, Any]], None]:
        return lambda document: document["clusters"][0]["cluster"].update({"tls-server-name": name})

    good = _rewrite(kube_plane.kubeconfig, tmp_path / "good", named("kubernetes.default.svc"))
    ours, library = await _both(await _ours(good), await _library(str(good)))
    assert ours == library
    bad = _rewrite(kube_plane.kubeconfig, tmp_path / "bad", named("elsewhere.example"))
    for kube in (await _ours(bad), await _library(str(bad))):
        try:
            with pytest.raises(errors.KubeUnavailable, match=r"certificate|hostname|SSL"):
                await kube.version()
        finally:
            await kube.close()


# ---- several files ----------------------------------------------------------------------------------------


async def test_kubeconfig_files_merged(token_kubeconfig: Path, tmp_path: Path) -> None:
    """Context in the first file, cluster in the second, user (with a relative tokenFile) in the third."""
    document = _load(token_kubeconfig)
    parts = [tmp_path / name for name in ("contexts", "clusters", "users")]
    for part in parts:
        part.mkdir()
    (parts[2] / "token").write_text(_token(token_kubeconfig))
    files = [
        parts[0] / "config",
        parts[1] / "config",
        parts[2] / "config",
    ]
    files[0].write_text(
        yaml.safe_dump({"contexts": document["contexts"], "current-context": document["current-context"]})
    )
    files[1].write_text(yaml.safe_dump({"clusters": document["clusters"]}))
    user = {"name": document["users"][0]["name"], "user": {"tokenFile": "token"}}
    files[2].write_text(yaml.safe_dump({"users": [user]}))
    joined = os.pathsep.join(str(f) for f in files)
    ours, library = await _both(await _ours(environ={"KUBECONFIG": joined}), await _library(joined))
    assert ours == library
    assert ours[1].endswith(":tester")


async def test_where_they_differ_the_service_follows_kubectl(
    kube_plane: plane_mod.KubePlane, token_kubeconfig: Path, tmp_path: Path
) -> None:
    admin = _load(kube_plane.kubeconfig)
    admin["contexts"][0]["name"] = admin["current-context"] = "admin"
    first, second = tmp_path / "first", tmp_path / "second"
    first.write_text(yaml.safe_dump(admin))
    token = _load(token_kubeconfig)
    for kind in ("clusters", "users"):
        token[kind][0]["name"] = f"tester-{kind}"
    token["contexts"][0]["context"] = {"cluster": "tester-clusters", "user": "tester-users"}
    token["contexts"][0]["name"] = token["current-context"] = "tester"
    second.write_text(yaml.safe_dump(token))
    joined = os.pathsep.join([str(first), str(second)])
    ours, library = await _both(await _ours(environ={"KUBECONFIG": joined}), await _library(joined))
    assert "system:masters" in ours[2], "kubectl: the first file to set current-context wins"
    assert library[1].endswith(":tester"), "kubernetes-asyncio: the last one wins"

    def string_false(document: dict[str, Any]) -> None:
        cluster = document["clusters"][0]["cluster"]
        del cluster["certificate-authority"]
        cluster["insecure-skip-tls-verify"] = "false"

    # A token file written with `echo` ends in a newline: kubectl and the service strip it, kubernetes-asyncio
    # puts it into the Authorization header, which aiohttp refuses to send.
    (tmp_path / "echoed-token").write_text(_token(token_kubeconfig) + "\n")

    def echoed(document: dict[str, Any]) -> None:
        user = document["users"][0]["user"]
        del user["token"]
        user["tokenFile"] = "echoed-token"

    echoed_path = _rewrite(token_kubeconfig, tmp_path / "echoed.kubeconfig", echoed)
    ours_kube = await _ours(echoed_path)
    try:
        assert (await _identity(ours_kube))[1].endswith(":tester")
    finally:
        await ours_kube.close()
    library_kube = await _library(str(echoed_path))
    try:
        with pytest.raises(ValueError, match="control character"):
            await library_kube.version()
    finally:
        await library_kube.close()

    unverified = _rewrite(kube_plane.kubeconfig, tmp_path / "string-false", string_false)
    with pytest.raises(
        credentials.UnusableCredentials, match="insecure-skip-tls-verify must be true or false"
    ):
        await _ours(unverified)
    library_kube = await _library(str(unverified))
    try:
        # bool("false") is True: the library connects without verifying the server at all.
        assert (await library_kube.version())["gitVersion"]
    finally:
        await library_kube.close()
