"""The chart's optional ValidatingAdmissionPolicy, on the real API server (admissionregistration.k8s.io/v1).

Covers: rendered with `admissionPolicy.enabled`, its policies and bindings are accepted and type-check clean;
the chart's ServiceAccount, holding the chart's own RBAC, may still change what the playbooks change (a
container's memory limit and request, replicas, the pod template's restartedAt annotation, its own
oom-responder.io/ annotations on a Deployment, a StatefulSet, a DaemonSet, a Job, an HPA's minReplicas, the
memory of a running pod through `resize`, a dry-run pod create), and every other change it sends is refused
with the policy's message (an image, a CPU limit, an added env var, a label, another annotation, another
template annotation, a container's command, a volume, a selector-free field such as minReadySeconds, an HPA's
maxReplicas, a Job's spec, a pod's CPU through `resize`, a real pod create); an administrator is not matched.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException

from tests.deploy import tooling
from tests.kubeplane import incidents
from tests.kubeplane import plane as plane_mod

pytestmark = pytest.mark.integration

RELEASE = "vap"
_RESOURCE_LIST_FIELD = re.compile(r"undefined field '(limits|requests|overhead)'")


def _install_policy(plane: plane_mod.KubePlane, helm: Path, namespace: str, tmp_path: Path) -> list[str]:
    """Render the chart for `namespace`, create its policies and bindings; their names."""
    documents = tooling.render_documents(
        helm,
        values={"admissionPolicy": {"enabled": True}, "rbac": {"podResize": True}},
        values_dir=tmp_path,
        release=f"{RELEASE}-{namespace[-6:]}",
        namespace=namespace,
    )
    wanted = [
        doc
        for doc in documents
        if doc["kind"] in ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")
    ]
    assert len(wanted) == 12, [doc["metadata"]["name"] for doc in wanted]
    manifest = tmp_path / "policy.yaml"
    manifest.write_text(yaml.safe_dump_all(wanted))
    plane.kubectl("apply", "-f", str(manifest))
    return [doc["metadata"]["name"] for doc in wanted if doc["kind"] == "ValidatingAdmissionPolicy"]


def _service_account(plane: plane_mod.KubePlane, helm: Path, namespace: str, tmp_path: Path) -> Path:
    """A token kubeconfig for the chart's ServiceAccount, bound to exactly the chart's workload rules."""
    documents = tooling.render_documents(
        helm,
        values={"rbac": {"podResize": True}},
        values_dir=tmp_path,
        release=f"{RELEASE}-{namespace[-6:]}",
        namespace=namespace,
    )
    [account] = [doc for doc in documents if doc["kind"] == "ServiceAccount"]
    # The workload rules: the ClusterRole named like the release (the others cover access reviews).
    [role] = [
        doc
        for doc in documents
        if doc["kind"] == "ClusterRole" and doc["metadata"]["name"] == account["metadata"]["name"]
    ]
    # The test's workloads are created by the administrator; the account holds the chart's rules only.
    return plane.service_account_kubeconfig(namespace, role["rules"], name=account["metadata"]["name"])


def _patch(
    plane: plane_mod.KubePlane, kubeconfig: Path | None, namespace: str, what: str, patch: Any, *extra: str
) -> tuple[bool, str]:
    result = plane.kubectl(
        "patch",
        "--namespace",
        namespace,
        what,
        "--type=strategic" if isinstance(patch, dict) else "--type=json",
        "-p",
        json.dumps(patch),
        *extra,
        kubeconfig=kubeconfig,
        check=False,
    )
    return result.returncode == 0, result.stderr.strip()


def _container(memory: str = "128Mi", cpu: str = "100m", **extra: Any) -> dict[str, Any]:
    return {"name": "app", "resources": {"limits": {"memory": memory, "cpu": cpu}}, **extra}


ALLOWED_ON_WORKLOADS: list[tuple[str, Any]] = [
    ("memory limit", {"spec": {"template": {"spec": {"containers": [_container(memory="256Mi")]}}}}),
    (
        "memory request",
        {
            "spec": {
                "template": {
                    "spec": {"containers": [{"name": "app", "resources": {"requests": {"memory": "64Mi"}}}]}
                }
            }
        },
    ),
    (
        "restartedAt",
        {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "now"}}}}},
    ),
    ("ledger annotation", {"metadata": {"annotations": {"oom-responder.io/ledger": "[]"}}}),
    ("thread annotation", {"metadata": {"annotations": {"oom-responder.io/thread": "123.456"}}}),
]
REFUSED_ON_WORKLOADS: list[tuple[str, Any]] = [
    ("image", {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "evil:latest"}]}}}}),
    ("cpu limit", {"spec": {"template": {"spec": {"containers": [_container(cpu="4")]}}}}),
    (
        "env var",
        {
            "spec": {
                "template": {"spec": {"containers": [{"name": "app", "env": [{"name": "X", "value": "1"}]}]}}
            }
        },
    ),
    ("command", {"spec": {"template": {"spec": {"containers": [{"name": "app", "command": ["sh"]}]}}}}),
    ("volume", {"spec": {"template": {"spec": {"volumes": [{"name": "host", "hostPath": {"path": "/"}}]}}}}),
    ("service account", {"spec": {"template": {"spec": {"serviceAccountName": "admin"}}}}),
    ("label", {"metadata": {"labels": {"owner": "someone-else"}}}),
    ("other annotation", {"metadata": {"annotations": {"example.com/owner": "x"}}}),
    ("template label", {"spec": {"template": {"metadata": {"labels": {"extra": "x"}}}}}),
    (
        "template annotation",
        {"spec": {"template": {"metadata": {"annotations": {"sidecar.io/inject": "true"}}}}},
    ),
    ("minReadySeconds", {"spec": {"minReadySeconds": 30}}),
]


def _until_enforced(plane: plane_mod.KubePlane, kubeconfig: Path, namespace: str) -> None:
    """Policies take effect once the API server's informers see them: wait until a refused change is refused."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ok, _ = _patch(
            plane, kubeconfig, namespace, "deployment/web", {"metadata": {"labels": {"probe": "x"}}}
        )
        if not ok:
            return
        plane.kubectl("label", "--namespace", namespace, "deployment/web", "probe-")
        time.sleep(0.5)
    raise AssertionError("the admission policy never took effect")


async def test_the_service_account_may_change_only_what_the_playbooks_change(
    kube_plane: plane_mod.KubePlane, namespace: str, helm: Path, tmp_path: Path, kube_api: Any
) -> None:
    policies = _install_policy(kube_plane, helm, namespace, tmp_path)
    try:
        account = _service_account(kube_plane, helm, namespace, tmp_path)
        containers = [incidents.container("app", memory_limit="128Mi", cpu_request="100m")]
        containers[0]["resources"]["limits"]["cpu"] = "100m"
        await incidents.create_deployment(kube_api, namespace, "web", replicas=1, containers=containers)
        await incidents.create_statefulset(kube_api, namespace, "db", replicas=1, containers=containers)
        await incidents.create_daemonset(kube_api, namespace, "agent", containers=containers)
        _until_enforced(kube_plane, account, namespace)
        for policy in policies:
            status = json.loads(
                kube_plane.kubectl("get", "validatingadmissionpolicy", policy, "-o", "json").stdout
            )["status"]
            # The type checker does not see ResourceList fields (container limits and requests, pod overhead):
            # it warns that they are undefined, while evaluation reads them (proved below: a CPU change is
            # refused, a memory change allowed). Any other warning is a mistake in the policy.
            warnings = (status.get("typeChecking") or {}).get("expressionWarnings") or []
            other = [
                line
                for warning in warnings
                for line in warning["warning"].splitlines()
                if "ERROR:" in line and not _RESOURCE_LIST_FIELD.search(line)
            ]
            assert not other, f"{policy}: {other}"

        for what in ("deployment/web", "statefulset/db", "daemonset/agent"):
            for name, patch in ALLOWED_ON_WORKLOADS:
                ok, error = _patch(kube_plane, account, namespace, what, patch)
                assert ok, f"{what}: {name} was refused: {error}"
            for name, patch in REFUSED_ON_WORKLOADS:
                ok, error = _patch(kube_plane, account, namespace, what, patch)
                assert not ok, f"{what}: {name} was allowed"
                assert "ValidatingAdmissionPolicy" in error and "the service account may" in error, error
        for what in ("deployment/web", "statefulset/db"):
            ok, error = _patch(kube_plane, account, namespace, what, {"spec": {"replicas": 2}})
            assert ok, error
        # The administrator is not held to it.
        ok, error = _patch(kube_plane, None, namespace, "deployment/web", REFUSED_ON_WORKLOADS[0][1])
        assert ok, error
    finally:
        for policy in policies:
            kube_plane.kubectl("delete", "validatingadmissionpolicybinding", policy, check=False)
            kube_plane.kubectl("delete", "validatingadmissionpolicy", policy, check=False)


async def test_hpas_jobs_and_pods_are_held_to_it_too(
    kube_plane: plane_mod.KubePlane, namespace: str, helm: Path, tmp_path: Path, kube_api: Any
) -> None:
    policies = _install_policy(kube_plane, helm, namespace, tmp_path)
    try:
        account = _service_account(kube_plane, helm, namespace, tmp_path)
        containers = [incidents.container("app", memory_limit="128Mi", cpu_request="100m")]
        containers[0]["resources"]["limits"]["cpu"] = "100m"
        web = await incidents.create_deployment(kube_api, namespace, "web", replicas=1, containers=containers)
        await incidents.create_hpa(kube_api, namespace, web, min_replicas=1, max_replicas=5, name="web")
        # The pod resized below, taken while it is the only one: once the HPA's floor is raised (below), the HPA
        # controller adds a second pod at its next sync, beside this one.
        [pod] = await incidents.wait_for_running_pods(kube_api, namespace, selector="app=web", count=1)
        job = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "batch"},
            "spec": {
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": containers,
                        "terminationGracePeriodSeconds": 0,
                    }
                }
            },
        }
        kube_plane.kubectl("apply", "--namespace", namespace, "-f", "-", input_text=json.dumps(job))
        _until_enforced(kube_plane, account, namespace)

        # The chart grants list and patch on HPAs, not get, which `kubectl patch` needs: patch as the service does.
        as_account = await kube_plane.api_client(account)
        try:
            hpas = k8s.AutoscalingV2Api(as_account)
            await hpas.patch_namespaced_horizontal_pod_autoscaler(
                "web", namespace, {"spec": {"minReplicas": 2}}
            )
            with pytest.raises(ApiException) as refused:
                await hpas.patch_namespaced_horizontal_pod_autoscaler(
                    "web", namespace, {"spec": {"maxReplicas": 50}}
                )
            assert refused.value.status == 422 and "ValidatingAdmissionPolicy" in str(refused.value.body)
        finally:
            await as_account.close()
        assert _patch(
            kube_plane,
            account,
            namespace,
            "job/batch",
            {"metadata": {"annotations": {"oom-responder.io/ledger": "[]"}}},
        )[0]
        assert not _patch(
            kube_plane, account, namespace, "job/batch", {"spec": {"activeDeadlineSeconds": 5}}
        )[0]

        memory = {
            "spec": {
                "containers": [
                    {
                        "name": "app",
                        "resources": {"limits": {"memory": "192Mi"}, "requests": {"memory": "64Mi"}},
                    }
                ]
            }
        }
        cpu = {
            "spec": {
                "containers": [
                    {"name": "app", "resources": {"limits": {"cpu": "2"}, "requests": {"cpu": "1"}}}
                ]
            }
        }
        as_account = await kube_plane.api_client(account)
        try:
            core = k8s.CoreV1Api(as_account)
            await core.patch_namespaced_pod_resize(pod["metadata"]["name"], namespace, memory)
            with pytest.raises(ApiException) as refused:
                await core.patch_namespaced_pod_resize(pod["metadata"]["name"], namespace, cpu)
            assert "resize only the memory" in str(refused.value.body)
        finally:
            await as_account.close()

        body = json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "probe"},
                "spec": {"containers": containers},
            }
        )
        dry = kube_plane.kubectl(
            "create",
            "--namespace",
            namespace,
            "--dry-run=server",
            "-f",
            "-",
            input_text=body,
            kubeconfig=account,
            check=False,
        )
        assert dry.returncode == 0, dry.stderr
        real = kube_plane.kubectl(
            "create", "--namespace", namespace, "-f", "-", input_text=body, kubeconfig=account, check=False
        )
        assert real.returncode != 0 and "only as a server-side dry run" in real.stderr, real.stderr
    finally:
        for policy in policies:
            kube_plane.kubectl("delete", "validatingadmissionpolicybinding", policy, check=False)
            kube_plane.kubectl("delete", "validatingadmissionpolicy", policy, check=False)
