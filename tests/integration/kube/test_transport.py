"""The service's own API transport against the real kube-apiserver.

Aspects covered:

* `Kube.connect` with the admin kubeconfig (client-certificate files), the same credentials inlined as
  base64 data, a service-account token kubeconfig and a `tokenFile` kubeconfig talks over the aiohttp
  transport and reads /version;
* answers map to the service's errors: 404 → KubeNotFound, 409 (create of an existing object) →
  KubeConflict, 403 (outside the service account's RBAC) → KubeForbidden with the API server's message, 422
  → KubeInvalid; every request is counted with its verb and code;
* a strategic-merge patch merges a Deployment's containers by name (the other container is kept); a dry-run
  create is admitted and answered but not stored; query parameters (label selectors) reach the server;
* `tls-server-name` is what the server certificate is checked against (a name outside it fails as
  KubeUnavailable); `insecure-skip-tls-verify` connects without the CA;
* a kubeconfig user with an `exec` plugin goes through kubernetes-asyncio (which runs the plugin) and gets
  the same answers and errors; `Kube(api=<ApiClient>)` still works.
"""

from __future__ import annotations

import base64
import json
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from responder import metrics as metrics_mod
from responder.kube import client, errors
from responder.models import settings
from tests.kubeplane import plane as plane_mod

pytestmark = pytest.mark.integration

CONFIGMAP_RULES = [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "create"]}]


def _requests(metrics: metrics_mod.Metrics, verb: str, code: str) -> float:
    # Summed over the `resource` label.
    return sum(
        sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == "oom_responder_kube_requests_total"
        and (sample.labels["verb"], sample.labels["code"]) == (verb, code)
    )


async def _connect(kubeconfig: Path, metrics: metrics_mod.Metrics, **extra: Any) -> client.Kube:
    return await client.Kube.connect(
        settings=settings.KubernetesSettings(kubeconfig=str(kubeconfig), **extra), metrics=metrics
    )


def _rewrite(source: Path, target: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    document = yaml.safe_load(source.read_text())
    change(document)
    target.write_text(yaml.safe_dump(document))
    return target


def _b64(path: str) -> str:
    return base64.b64encode(Path(path).read_bytes()).decode()


def _configmap(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


async def test_client_certificate_files_and_inline_data_both_reach_the_api_server(
    kube_plane: plane_mod.KubePlane, tmp_path: Path
) -> None:
    metrics = metrics_mod.Metrics()

    def inline(document: dict[str, Any]) -> None:
        cluster = document["clusters"][0]["cluster"]
        user = document["users"][0]["user"]
        cluster["certificate-authority-data"] = _b64(cluster.pop("certificate-authority"))
        user["client-certificate-data"] = _b64(user.pop("client-certificate"))
        user["client-key-data"] = _b64(user.pop("client-key"))

    inlined = _rewrite(kube_plane.kubeconfig, tmp_path / "inline.kubeconfig", inline)
    for kubeconfig in (kube_plane.kubeconfig, inlined):
        kube = await _connect(kubeconfig, metrics)
        try:
            assert isinstance(kube.transport, client.AiohttpTransport)
            version = await kube.version()
            assert version["gitVersion"] == kube_plane.version["gitVersion"]
        finally:
            await kube.close()
    assert _requests(metrics, "get", "200") == 2


async def test_answers_map_to_the_services_errors_and_are_counted(
    kube_plane: plane_mod.KubePlane, namespace: str
) -> None:
    metrics = metrics_mod.Metrics()
    kube = await _connect(kube_plane.kubeconfig, metrics)
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    try:
        with pytest.raises(errors.KubeNotFound) as missing:
            await kube.get(f"{base}/absent")
        assert missing.value.status == 404
        assert "absent" in missing.value.message

        await kube.create(base, _configmap("once", a="1"))
        with pytest.raises(errors.KubeConflict) as conflict:
            await kube.create(base, _configmap("once", a="2"))
        assert conflict.value.reason == "AlreadyExists"

        with pytest.raises(errors.KubeInvalid) as invalid:
            await kube.create(base, _configmap("Not_A_Valid_Name"))
        assert invalid.value.status == 422
    finally:
        await kube.close()
    assert _requests(metrics, "get", "404") == 1
    assert _requests(metrics, "create", "201") == 1
    assert _requests(metrics, "create", "409") == 1
    assert _requests(metrics, "create", "422") == 1


async def test_a_service_account_token_is_allowed_its_rbac_and_forbidden_the_rest(
    kube_plane: plane_mod.KubePlane,
    namespace: str,
    service_account_kubeconfig: Callable[..., Path],
    tmp_path: Path,
) -> None:
    token_kubeconfig = service_account_kubeconfig(namespace, CONFIGMAP_RULES)

    def to_token_file(document: dict[str, Any]) -> None:
        user = document["users"][0]["user"]
        token_path = tmp_path / "token"
        token_path.write_text(user.pop("token") + "\n")
        user["tokenFile"] = "token"  # relative to the kubeconfig's directory

    file_kubeconfig = _rewrite(token_kubeconfig, tmp_path / "file.kubeconfig", to_token_file)
    for kubeconfig in (token_kubeconfig, file_kubeconfig):
        metrics = metrics_mod.Metrics()
        kube = await _connect(kubeconfig, metrics)
        try:
            assert isinstance(kube.transport, client.AiohttpTransport)
            assert (await kube.version())["gitVersion"]
            base = f"/api/v1/namespaces/{namespace}/configmaps"
            name = f"by-{kubeconfig.stem.replace('.', '-')}"
            await kube.create(base, _configmap(name, a="1"))
            listed = await kube.list(base)
            assert name in {item["metadata"]["name"] for item in listed}
            with pytest.raises(errors.KubeForbidden) as forbidden:
                await kube.get(f"/apis/apps/v1/namespaces/{namespace}/deployments")
            assert f"system:serviceaccount:{namespace}:tester" in forbidden.value.message
        finally:
            await kube.close()
        assert _requests(metrics, "create", "201") == 1
        assert _requests(metrics, "list", "200") == 1
        assert _requests(metrics, "get", "403") == 1


async def test_a_strategic_merge_patch_merges_containers_by_name(
    kube_plane: plane_mod.KubePlane, namespace: str
) -> None:
    kube = await _connect(kube_plane.kubeconfig, metrics_mod.Metrics())
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    containers = [
        {"name": "app", "image": "example/app:1", "resources": {"limits": {"memory": "64Mi"}}},
        {"name": "sidecar", "image": "example/sidecar:1"},
    ]
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": containers}},
        },
    }
    try:
        await kube.create(path, deployment)
        patched = await kube.patch(
            f"{path}/web",
            {
                "spec": {
                    "template": {
                        "spec": {
                            "containers": [{"name": "app", "resources": {"limits": {"memory": "128Mi"}}}]
                        }
                    }
                }
            },
        )
        live = {c["name"]: c for c in patched["spec"]["template"]["spec"]["containers"]}
        assert live["app"]["resources"]["limits"]["memory"] == "128Mi"
        assert live["app"]["image"] == "example/app:1"
        assert live["sidecar"]["image"] == "example/sidecar:1"
        merged = await kube.patch(
            f"{path}/web", {"metadata": {"annotations": {"a": "b"}}}, content_type=client.MERGE_PATCH
        )
        assert merged["metadata"]["annotations"]["a"] == "b"
        selected = await kube.list(path, query={"labelSelector": "app=web"})
        assert [d["metadata"]["name"] for d in selected] == ["web"]
        assert await kube.list(path, query={"labelSelector": "app=other"}) == []
    finally:
        await kube.close()


async def test_a_dry_run_create_is_answered_but_not_stored(
    kube_plane: plane_mod.KubePlane, namespace: str
) -> None:
    kube = await _connect(kube_plane.kubeconfig, metrics_mod.Metrics())
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    try:
        answer = await kube.create(base, _configmap("dry", a="1"), dry_run=True)
        assert answer["metadata"]["name"] == "dry"
        assert answer["data"] == {"a": "1"}
        with pytest.raises(errors.KubeNotFound):
            await kube.get(f"{base}/dry")
    finally:
        await kube.close()


async def test_tls_server_name_is_what_the_certificate_is_checked_against(
    kube_plane: plane_mod.KubePlane, tmp_path: Path
) -> None:
    def server_name(name: str) -> Callable[[dict[str, Any]], None]:
        def change(document: dict[str, Any]) -> None:
            document["clusters"][0]["cluster"]["tls-server-name"] = name

        return change

    good = _rewrite(kube_plane.kubeconfig, tmp_path / "good", server_name("kubernetes.default.svc"))
    bad = _rewrite(kube_plane.kubeconfig, tmp_path / "bad", server_name("elsewhere.example"))
    metrics = metrics_mod.Metrics()
    kube = await _connect(good, metrics, max_attempts=1)
    try:
        assert (await kube.version())["gitVersion"]
    finally:
        await kube.close()
    kube = await _connect(bad, metrics, max_attempts=1)
    try:
        with pytest.raises(errors.KubeUnavailable, match=r"certificate|hostname|SSL"):
            await kube.version()
    finally:
        await kube.close()
    assert _requests(metrics, "get", "0") == 1


async def test_insecure_skip_tls_verify_connects_without_the_ca(
    kube_plane: plane_mod.KubePlane, tmp_path: Path
) -> None:
    def insecure(document: dict[str, Any]) -> None:
        cluster = document["clusters"][0]["cluster"]
        del cluster["certificate-authority"]
        cluster["insecure-skip-tls-verify"] = True

    kube = await _connect(
        _rewrite(kube_plane.kubeconfig, tmp_path / "insecure", insecure), metrics_mod.Metrics()
    )
    try:
        assert (await kube.version())["gitVersion"]
    finally:
        await kube.close()


async def test_an_exec_plugin_user_goes_through_kubernetes_asyncio_with_the_same_answers(
    kube_plane: plane_mod.KubePlane,
    namespace: str,
    service_account_kubeconfig: Callable[..., Path],
    tmp_path: Path,
) -> None:
    token = yaml.safe_load(service_account_kubeconfig(namespace, CONFIGMAP_RULES).read_text())["users"][0][
        "user"
    ]["token"]
    plugin = tmp_path / "get-token"
    credential = {
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "kind": "ExecCredential",
        "status": {"token": token},
    }
    plugin.write_text(f"#!{sys.executable}\nprint({json.dumps(json.dumps(credential))})\n")
    plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR)

    def use_plugin(document: dict[str, Any]) -> None:
        document["users"][0]["user"] = {
            "exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": str(plugin)}
        }

    metrics = metrics_mod.Metrics()
    kube = await _connect(_rewrite(kube_plane.kubeconfig, tmp_path / "exec", use_plugin), metrics)
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    try:
        assert isinstance(kube.transport, client.ApiClientTransport)
        assert (await kube.version())["gitVersion"]
        created = await kube.create(base, _configmap("via-plugin", a="1"))
        assert created["metadata"]["name"] == "via-plugin"
        with pytest.raises(errors.KubeConflict):
            await kube.create(base, _configmap("via-plugin"))
        with pytest.raises(errors.KubeNotFound):
            await kube.get(f"{base}/absent")
        with pytest.raises(errors.KubeForbidden):
            await kube.get(f"/apis/apps/v1/namespaces/{namespace}/deployments")
    finally:
        await kube.close()
    assert _requests(metrics, "create", "409") == 1
    assert _requests(metrics, "get", "403") == 1


async def test_a_kube_built_on_an_api_client_still_works(kube_api: Any, namespace: str) -> None:
    kube = client.Kube(api=kube_api, settings=settings.KubernetesSettings(), metrics=metrics_mod.Metrics())
    assert isinstance(kube.transport, client.ApiClientTransport)
    assert (await kube.version())["gitVersion"]
    with pytest.raises(errors.KubeNotFound):
        await kube.get(f"/api/v1/namespaces/{namespace}/configmaps/absent")
