"""Short-lived credentials against the real kube-apiserver: renewed before they expire, and a 401 retried once.

An exec plugin (what EKS, GKE and AKS kubeconfigs run) mints a real service-account token per run through the
TokenRequest API, bound to a Secret of its own, and states an expiry; the test revokes a token by deleting its
Secret (the API server then refuses it: 401). Aspects covered:

* a token whose stated expiry falls within kubernetes-asyncio's renewal margin is renewed before each
  request: many requests over several seconds, while every token past its stated expiry is revoked, all
  succeed without a single 401; a token far from expiry is kept (the plugin runs once);
* a token revoked before its stated expiry: the request gets 401, the plugin runs again and the request is
  retried once and succeeds; when the renewed token is refused too, the 401 is final (the plugin is not run
  in a loop) and surfaces as KubeUnauthorized;
* a `tokenFile` kubeconfig: after a 401 the file is read again at once (even with an unchanged mtime) and the
  request retried with the new token.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from responder import metrics as metrics_mod
from responder.kube import client, errors
from responder.models import settings
from tests.kubeplane import plane as plane_mod

pytestmark = pytest.mark.integration

RULES = [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]

PLUGIN = r"""
import datetime, json, os, pathlib, ssl, urllib.request

state = pathlib.Path(os.environ["MINT_STATE"])
number = len(list(state.glob("issued-*.json"))) + 1
context = ssl.create_default_context(cafile=os.environ["MINT_CA"])
context.load_cert_chain(os.environ["MINT_CERT"], os.environ["MINT_KEY"])


def call(path, body):
    request = urllib.request.Request(
        os.environ["MINT_SERVER"] + path, data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, context=context, timeout=30) as response:
        return json.load(response)


namespace, account = os.environ["MINT_NAMESPACE"], os.environ["MINT_ACCOUNT"]
name = f"token-{number}"
secret = call(f"/api/v1/namespaces/{namespace}/secrets", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}})
review = call(
    f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token",
    {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "expirationSeconds": 600,
            "boundObjectRef": {"kind": "Secret", "apiVersion": "v1", "name": name, "uid": secret["metadata"]["uid"]},
        },
    },
)
token = "not-a-token" if (state / "garbage").exists() else review["status"]["token"]
expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=float(os.environ["MINT_LIFETIME"]))
(state / f"issued-{number}.json").write_text(json.dumps({"secret": name, "token": token, "expires": expires.timestamp()}))
print(json.dumps({
    "apiVersion": "client.authentication.k8s.io/v1beta1",
    "kind": "ExecCredential",
    "status": {"token": token, "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ")},
}))
"""


class Minting:
    """The plugin's kubeconfig and what it issued."""

    def __init__(self, kubeconfig: Path, state: Path) -> None:
        self.kubeconfig = kubeconfig
        self.state = state

    def issued(self) -> list[dict[str, Any]]:
        files = sorted(self.state.glob("issued-*.json"), key=lambda p: int(p.stem.split("-")[1]))
        return [json.loads(p.read_text()) for p in files]

    def refuse_from_now_on(self) -> None:
        (self.state / "garbage").touch()


@pytest.fixture
def minting(
    kube_plane: plane_mod.KubePlane,
    namespace: str,
    service_account_kubeconfig: Callable[..., Path],
    tmp_path: Path,
) -> Callable[[float], Minting]:
    service_account_kubeconfig(namespace, RULES)  # the ServiceAccount "tester" and its Role
    admin = yaml.safe_load(kube_plane.kubeconfig.read_text())
    user = admin["users"][0]["user"]
    plugin = tmp_path / "mint-token"
    plugin.write_text(f"#!{sys.executable}\n{PLUGIN}")
    plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR)

    def make(lifetime_seconds: float) -> Minting:
        state = tmp_path / f"state-{lifetime_seconds}"
        state.mkdir()
        env = {
            "MINT_STATE": str(state),
            "MINT_SERVER": kube_plane.server,
            "MINT_CA": str(kube_plane.ca_path),
            "MINT_CERT": user["client-certificate"],
            "MINT_KEY": user["client-key"],
            "MINT_NAMESPACE": namespace,
            "MINT_ACCOUNT": "tester",
            "MINT_LIFETIME": str(lifetime_seconds),
        }
        document = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": admin["clusters"],
            "users": [
                {
                    "name": "plugin",
                    "user": {
                        "exec": {
                            "apiVersion": "client.authentication.k8s.io/v1beta1",
                            "command": str(plugin),
                            "env": [{"name": k, "value": v} for k, v in env.items()],
                            "interactiveMode": "Never",
                        }
                    },
                }
            ],
            "contexts": [
                {"name": "plugin", "context": {"cluster": admin["clusters"][0]["name"], "user": "plugin"}}
            ],
            "current-context": "plugin",
        }
        path = tmp_path / f"plugin-{lifetime_seconds}.kubeconfig"
        path.write_text(yaml.safe_dump(document))
        return Minting(path, state)

    return make


async def _admin(kube_plane: plane_mod.KubePlane) -> client.Kube:
    return await client.Kube.connect(
        settings=settings.KubernetesSettings(kubeconfig=str(kube_plane.kubeconfig)),
        metrics=metrics_mod.Metrics(),
    )


async def _wait_refused(kube_plane: plane_mod.KubePlane, token: str) -> None:
    """Until the API server refuses `token` (its authentication cache keeps a token valid for a few seconds)."""
    import ssl  # noqa: PLC0415

    context = ssl.create_default_context(cafile=str(kube_plane.ca_path))
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession() as session:
        while True:
            async with session.get(
                f"{kube_plane.server}/version", headers={"Authorization": f"Bearer {token}"}, ssl=context
            ) as response:
                if response.status == 401:
                    return
            assert time.monotonic() < deadline, "the revoked token is still accepted after 60 s"
            await asyncio.sleep(0.5)


async def _revoke(admin: client.Kube, namespace: str, secret: str) -> None:
    await admin.request("DELETE", f"/api/v1/namespaces/{namespace}/secrets/{secret}")


def _count(metrics: metrics_mod.Metrics, verb: str, code: str) -> float:
    # Summed over the `resource` label.
    return sum(
        sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == "oom_responder_kube_requests_total"
        and sample.labels.get("verb") == verb
        and sample.labels.get("code") == code
    )


async def test_a_token_near_its_expiry_is_renewed_before_the_request(
    kube_plane: plane_mod.KubePlane, namespace: str, minting: Callable[[float], Minting]
) -> None:
    short = minting(3.0)
    metrics = metrics_mod.Metrics()
    kube = await client.Kube.connect(
        settings=settings.KubernetesSettings(kubeconfig=str(short.kubeconfig)), metrics=metrics
    )
    admin = await _admin(kube_plane)
    revoked: set[str] = set()

    async def revoke_expired() -> None:
        # Enforce the stated expiry for real: a token past it is revoked.
        while True:
            for issued in short.issued():
                if issued["expires"] < time.time() and issued["secret"] not in revoked:
                    await _revoke(admin, namespace, issued["secret"])
                    revoked.add(issued["secret"])
            await asyncio.sleep(0.2)

    revoker = asyncio.create_task(revoke_expired())
    try:
        assert isinstance(kube.transport, client.ApiClientTransport)
        refresher = kube.transport.refresher
        assert refresher is not None
        started = time.monotonic()
        requests = 0
        while time.monotonic() - started < 8:
            await kube.list(f"/api/v1/namespaces/{namespace}/configmaps")
            requests += 1
            await asyncio.sleep(0.5)
        # Let the first token's revocation take effect, then prove that token is really refused now.
        first = short.issued()[0]
        await _wait_refused(kube_plane, first["token"])
        await kube.list(f"/api/v1/namespaces/{namespace}/configmaps")
        requests += 1
    finally:
        revoker.cancel()
        await asyncio.gather(revoker, return_exceptions=True)
        await kube.close()
        await admin.close()
    assert _count(metrics, "list", "200") == requests
    assert refresher.refreshes_after_401 == 0, "a token was used past its stated expiry"
    assert len(short.issued()) >= requests, "a token within the renewal margin was not renewed"
    assert revoked, "no token reached its stated expiry during the test"


async def test_a_token_far_from_expiry_is_kept(namespace: str, minting: Callable[[float], Minting]) -> None:
    long = minting(3600.0)
    kube = await client.Kube.connect(
        settings=settings.KubernetesSettings(kubeconfig=str(long.kubeconfig)), metrics=metrics_mod.Metrics()
    )
    try:
        for _ in range(5):
            await kube.list(f"/api/v1/namespaces/{namespace}/configmaps")
    finally:
        await kube.close()
    assert len(long.issued()) == 1


async def test_a_revoked_token_is_renewed_and_the_request_retried_once(
    kube_plane: plane_mod.KubePlane, namespace: str, minting: Callable[[float], Minting]
) -> None:
    long = minting(3600.0)
    metrics = metrics_mod.Metrics()
    kube = await client.Kube.connect(
        settings=settings.KubernetesSettings(kubeconfig=str(long.kubeconfig)), metrics=metrics
    )
    admin = await _admin(kube_plane)
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    try:
        assert isinstance(kube.transport, client.ApiClientTransport)
        refresher = kube.transport.refresher
        assert refresher is not None
        await kube.list(path)
        [first] = long.issued()
        await _revoke(admin, namespace, first["secret"])
        await _wait_refused(kube_plane, first["token"])

        await kube.list(path)  # 401, renewed, retried: succeeds
        assert len(long.issued()) == 2
        assert refresher.refreshes_after_401 == 1
        assert _count(metrics, "list", "200") == 2
        assert _count(metrics, "list", "401") == 0

        # The renewed credential is refused too: the 401 is the server's final word, no loop.
        long.refuse_from_now_on()
        second = long.issued()[1]
        await _revoke(admin, namespace, second["secret"])
        await _wait_refused(kube_plane, second["token"])
        with pytest.raises(errors.KubeUnauthorized):
            await kube.list(path)
        assert len(long.issued()) == 3
        assert refresher.refreshes_after_401 == 2
    finally:
        await kube.close()
        await admin.close()


async def test_a_token_file_is_read_again_after_a_401(
    kube_plane: plane_mod.KubePlane, namespace: str, minting: Callable[[float], Minting], tmp_path: Path
) -> None:
    tokens = minting(3600.0)
    # Two real tokens from the plugin, each bound to its own Secret.
    issuer = await client.Kube.connect(
        settings=settings.KubernetesSettings(kubeconfig=str(tokens.kubeconfig)), metrics=metrics_mod.Metrics()
    )
    await issuer.close()
    assert isinstance(issuer.transport, client.ApiClientTransport)
    first = tokens.issued()[0]
    second_token = await _mint_again(tokens)
    token_file = tmp_path / "token"
    token_file.write_text(first["token"])
    admin_doc = yaml.safe_load(kube_plane.kubeconfig.read_text())
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": admin_doc["clusters"],
        "users": [{"name": "file", "user": {"tokenFile": str(token_file)}}],
        "contexts": [
            {"name": "file", "context": {"cluster": admin_doc["clusters"][0]["name"], "user": "file"}}
        ],
        "current-context": "file",
    }
    kubeconfig = tmp_path / "file.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    metrics = metrics_mod.Metrics()
    kube = await client.Kube.connect(
        settings=settings.KubernetesSettings(kubeconfig=str(kubeconfig)), metrics=metrics
    )
    admin = await _admin(kube_plane)
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    try:
        assert isinstance(kube.transport, client.AiohttpTransport)
        await kube.list(path)
        await _revoke(admin, namespace, first["secret"])
        await _wait_refused(kube_plane, first["token"])
        mtime = token_file.stat().st_mtime_ns
        token_file.write_text(second_token)
        os.utime(token_file, ns=(mtime, mtime))  # only the 401 can tell
        await kube.list(path)
    finally:
        await kube.close()
        await admin.close()
    assert _count(metrics, "list", "200") == 2


async def _mint_again(minting: Minting) -> str:
    kube = await client.Kube.connect(
        settings=settings.KubernetesSettings(kubeconfig=str(minting.kubeconfig)),
        metrics=metrics_mod.Metrics(),
    )
    await kube.close()
    return str(minting.issued()[-1]["token"])
