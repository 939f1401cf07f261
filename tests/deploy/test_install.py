"""The chart installed with helm into the real control plane.

Aspects covered:
* every object of the default install is accepted by the API server (server-side validation and admission,
  in a namespace enforcing the `restricted` Pod Security Standard), the Deployment's pods are admitted and
  become ready, spread over the nodes, and NOTES tell how to point Alertmanager at the Service;
* the non-default install (RBAC as Roles in listed namespaces, Slack secret, ServiceMonitor, NetworkPolicy,
  PrometheusRule, with minimal monitoring.coreos.com CRDs) is accepted too, and `helm uninstall` removes the
  cluster-scoped objects;
* a release whose chart creates the webhook Secret (random token), with the Grafana dashboard ConfigMap,
  monitoring labels and relabelings, extraEnv/extraVolumes/extraVolumeMounts and security contexts without a
  fixed UID (OpenShift) is admitted in a `restricted` namespace, and `helm upgrade` keeps the token and the
  pods (same checksum).
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy import tooling
from tests.kubeplane import plane as plane_mod

pytestmark = pytest.mark.integration

_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {plural}.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {{plural: {plural}, singular: {singular}, kind: {kind}, listKind: {kind}List}}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
"""


@pytest.fixture(scope="module")
def monitoring_crds(kube_plane: plane_mod.KubePlane) -> None:
    """Stand-ins for the Prometheus operator's CRDs: any spec is accepted, so the objects' kinds resolve."""
    for kind, singular, plural in (
        ("ServiceMonitor", "servicemonitor", "servicemonitors"),
        ("PrometheusRule", "prometheusrule", "prometheusrules"),
    ):
        kube_plane.kubectl(
            "apply", "-f", "-", input_text=_CRD.format(kind=kind, singular=singular, plural=plural)
        )
        kube_plane.kubectl("wait", "--for=condition=Established", f"crd/{plural}.monitoring.coreos.com")


class Helm:
    """helm against the test plane; releases installed through it are uninstalled when the test ends."""

    def __init__(self, binary: Path, plane: plane_mod.KubePlane, workdir: Path) -> None:
        self.binary = binary
        self.plane = plane
        self.workdir = workdir
        self.installed: list[tuple[str, str]] = []

    def __call__(self, *args: str | Path, timeout: float = 180) -> Any:
        return tooling.run(
            [self.binary, *args, "--kubeconfig", self.plane.kubeconfig],
            timeout=timeout,
        )

    def install(
        self, release: str, namespace: str, values: dict[str, Any] | None = None, *, wait: bool = True
    ) -> Any:
        values_file = self.workdir / f"{release}-values.yaml"
        values_file.write_text(yaml.safe_dump(values or {}))
        self.installed.append((release, namespace))
        extra = ["--wait", "--timeout", "120s"] if wait else []
        return self(
            "install", release, tooling.CHART, "--namespace", namespace, "--values", values_file, *extra
        )

    def uninstall_all(self) -> None:
        for release, namespace in reversed(self.installed):
            self("uninstall", release, "--namespace", namespace, "--wait", "--timeout", "60s")


@pytest.fixture
def helm_on_plane(helm: Path, kube_plane: plane_mod.KubePlane, tmp_path: Path) -> Iterator[Helm]:
    runner = Helm(helm, kube_plane, tmp_path)
    try:
        yield runner
    finally:
        runner.uninstall_all()


def _restrict(plane: plane_mod.KubePlane, namespace: str) -> None:
    plane.kubectl(
        "label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted", "--overwrite"
    )


def _create_token_secret(
    plane: plane_mod.KubePlane, namespace: str, name: str = "oom-responder-webhook"
) -> str:
    token = secrets.token_hex(16)
    plane.kubectl("-n", namespace, "create", "secret", "generic", name, f"--from-literal=token={token}")
    return token


def _get(plane: plane_mod.KubePlane, *args: str) -> Any:
    return json.loads(plane.kubectl("get", *args, "-o", "json").stdout)


def test_default_install_is_accepted_and_its_pods_become_ready(
    kube_plane: plane_mod.KubePlane, namespace: str, helm_on_plane: Helm
) -> None:
    _restrict(kube_plane, namespace)
    _create_token_secret(kube_plane, namespace)
    release = f"r{secrets.token_hex(3)}"

    result = helm_on_plane.install(release, namespace)

    assert result.returncode == 0, result.stderr
    assert f"http://{release}-oom-responder.{namespace}.svc:8080/webhook" in result.stdout
    manifest = helm_on_plane("get", "manifest", release, "--namespace", namespace).stdout
    rendered = [(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(manifest) if d]
    assert {kind for kind, _ in rendered} == {
        "ServiceAccount", "ConfigMap", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
        "Service", "Deployment", "PodDisruptionBudget",
    }  # fmt: skip
    for kind, name in rendered:
        scope = [] if kind.startswith("Cluster") else ["--namespace", namespace]
        assert _get(kube_plane, kind.lower(), name, *scope)["metadata"]["name"] == name
    pods = _get(kube_plane, "pods", "--namespace", namespace, "-l", f"app.kubernetes.io/instance={release}")[
        "items"
    ]
    assert len(pods) == 2
    assert all(c["status"] == "True" for p in pods for c in p["status"]["conditions"] if c["type"] == "Ready")
    assert len({p["spec"]["nodeName"] for p in pods}) == 2, "the two replicas share a node"


def test_non_default_install_is_accepted_and_uninstalls_cleanly(
    kube_plane: plane_mod.KubePlane, namespace: str, helm_on_plane: Helm, monitoring_crds: None
) -> None:
    _restrict(kube_plane, namespace)
    _create_token_secret(kube_plane, namespace)
    _create_token_secret(kube_plane, namespace, "slack-bot")
    watched = [f"{namespace}-a", f"{namespace}-b"]
    for name in watched:
        kube_plane.create_namespace(name)
    release = f"r{secrets.token_hex(3)}"
    try:
        result = helm_on_plane.install(
            release,
            namespace,
            {
                "rbac": {"scope": "namespaced", "namespaces": watched},
                "slack": {"tokenSecret": {"name": "slack-bot", "key": "token"}},
                "serviceMonitor": {"enabled": True},
                "networkPolicy": {"enabled": True},
                "prometheusRule": {"enabled": True},
                "config": {"mode": "enforce", "notifiers": {"slack": {"channel": "#incidents"}}},
            },
        )
        assert result.returncode == 0, result.stderr

        for name in watched:
            assert _get(kube_plane, "role", f"{release}-oom-responder", "--namespace", name)["rules"]
        for kind in ("servicemonitor", "prometheusrule", "networkpolicy"):
            assert _get(kube_plane, kind, f"{release}-oom-responder", "--namespace", namespace)
        rule = _get(kube_plane, "prometheusrule", f"{release}-oom-responder", "--namespace", namespace)
        assert {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]} == {
            "PodMemoryHigh", "PodMemoryTrendingToOOM", "OOMKilled", "PodRestartingFrequently",
        }  # fmt: skip

        uninstalled = helm_on_plane("uninstall", release, "--namespace", namespace, "--wait")
        assert uninstalled.returncode == 0, uninstalled.stderr
        helm_on_plane.installed.clear()
        left = kube_plane.kubectl("get", "clusterroles,clusterrolebindings", "-o", "name").stdout
        assert release not in left
    finally:
        for name in watched:
            kube_plane.delete_namespace(name)


def test_chart_created_secret_and_extra_values_install_and_the_token_survives_an_upgrade(
    kube_plane: plane_mod.KubePlane, namespace: str, helm_on_plane: Helm, monitoring_crds: None
) -> None:
    _restrict(kube_plane, namespace)
    kube_plane.kubectl("-n", namespace, "create", "configmap", "private-ca", "--from-literal=ca.crt=none")
    release = f"r{secrets.token_hex(3)}"
    values: dict[str, Any] = {
        "webhook": {"tokenSecret": {"name": "", "create": True}},
        "grafanaDashboard": {"enabled": True},
        "serviceMonitor": {
            "enabled": True,
            "additionalLabels": {"release": "kube-prometheus-stack"},
            "relabelings": [{"targetLabel": "cluster", "replacement": "test"}],
        },
        "prometheusRule": {"enabled": True, "additionalLabels": {"release": "kube-prometheus-stack"}},
        "extraEnv": [{"name": "SSL_CERT_FILE", "value": "/etc/ssl/private-ca/ca.crt"}],
        "extraVolumes": [{"name": "private-ca", "configMap": {"name": "private-ca"}}],
        "extraVolumeMounts": [{"name": "private-ca", "mountPath": "/etc/ssl/private-ca", "readOnly": True}],
        # What OpenShift needs: no fixed UID; the restricted Pod Security Standard must still admit it.
        "podSecurityContext": {"runAsUser": None, "runAsGroup": None, "fsGroup": None},
        "securityContext": {"runAsUser": None, "runAsGroup": None},
    }
    result = helm_on_plane.install(release, namespace, values)
    assert result.returncode == 0, result.stderr

    secret_name = f"{release}-oom-responder-webhook"
    token = _get(kube_plane, "secret", secret_name, "--namespace", namespace)["data"]["token"]
    assert len(base64.b64decode(token)) == 64
    dashboard = _get(kube_plane, "configmap", f"{release}-oom-responder-dashboard", "--namespace", namespace)
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    monitor = _get(kube_plane, "servicemonitor", f"{release}-oom-responder", "--namespace", namespace)
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    deployment = _get(kube_plane, "deployment", f"{release}-oom-responder", "--namespace", namespace)
    template = deployment["spec"]["template"]
    assert "runAsUser" not in template["spec"]["securityContext"]
    assert template["metadata"]["annotations"]["checksum/webhook-secret"]

    values_file = helm_on_plane.workdir / f"{release}-values.yaml"
    upgraded = helm_on_plane(
        "upgrade", release, tooling.CHART, "--namespace", namespace, "--values", values_file, "--wait"
    )
    assert upgraded.returncode == 0, upgraded.stderr
    # The random token is looked up and kept: Alertmanager's copy stays valid across upgrades.
    assert _get(kube_plane, "secret", secret_name, "--namespace", namespace)["data"]["token"] == token
    again = _get(kube_plane, "deployment", f"{release}-oom-responder", "--namespace", namespace)
    assert (
        again["spec"]["template"]["metadata"]["annotations"]["checksum/webhook-secret"]
        == template["metadata"]["annotations"]["checksum/webhook-secret"]
    ), "an unchanged Secret must not roll the pods"
