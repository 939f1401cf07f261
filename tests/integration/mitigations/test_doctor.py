"""`oom-responder doctor` against the real API server and RBAC.

Aspects covered: the version line; every needed permission allowed for an admin (exit 0); a ServiceAccount
bound to `view` is told exactly which verbs are missing (exit 1); through the CLI with a config file.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from responder import cli
from responder.commands import doctoring
from responder.models import settings
from tests.kubeplane.plane import KubePlane

pytestmark = pytest.mark.integration


def make_config(kubeconfig: Path, namespace: str) -> settings.Settings:
    return settings.Settings.model_validate(
        {
            "kubernetes": {
                "kubeconfig": str(kubeconfig),
                "namespaces": [namespace],
                "own_namespace": namespace,
            },
            "auth": {"mode": "none"},
        }
    )


async def test_an_admin_has_every_permission(kube_plane: KubePlane, namespace: str) -> None:
    out = io.StringIO()
    code = await doctoring.diagnose(make_config(kube_plane.kubeconfig, namespace), out=out)
    text = out.getvalue()
    assert code == 0, text
    assert "reachable, Kubernetes v1." in text
    assert any(line.split()[:3] == ["ok", "patch", "apps/deployments"] for line in text.splitlines())
    assert "MISSING" not in text


async def test_a_read_only_account_is_told_what_is_missing(
    kube_plane: KubePlane, namespace: str, service_account_kubeconfig: Callable[..., Path]
) -> None:
    kubeconfig = service_account_kubeconfig(namespace, "view")
    out = io.StringIO()
    code = await doctoring.diagnose(make_config(kubeconfig, namespace), out=out)
    text = out.getvalue()
    assert code == 1
    missing = [line for line in text.splitlines() if line.startswith("MISSING")]
    assert any("patch" in line and "apps/deployments" in line for line in missing)
    assert any("create" in line and "events.k8s.io/events" in line for line in missing)
    assert not any(
        line.startswith("MISSING") and " get " in f" {line} " and "core/pods" in line for line in missing
    )


def test_the_cli_exits_1_when_something_is_missing(
    kube_plane: KubePlane, namespace: str, service_account_kubeconfig: Callable[..., Path], tmp_path: Path
) -> None:
    kubeconfig = service_account_kubeconfig(namespace, "view")
    path = tmp_path / "responder.yaml"
    path.write_text(
        yaml.safe_dump({"kubernetes": {"kubeconfig": str(kubeconfig), "namespaces": [namespace]}}),
        encoding="utf-8",
    )
    assert cli.main(["doctor", "--config", str(path)]) == 1


async def test_reports_heap_dumps_and_their_exec_permission(
    kube_plane: KubePlane, namespace: str, service_account_kubeconfig: Callable[..., Path]
) -> None:
    base = make_config(kube_plane.kubeconfig, namespace)
    out = io.StringIO()
    assert await doctoring.diagnose(base, out=out) == 0
    assert "heap dumps: off (diagnostics.heap_dump.enabled: false; pods/exec not needed)" in out.getvalue()
    assert "pods/exec" not in out.getvalue().split("heap dumps:")[0]

    # Enabled and used by a playbook: get and create on pods/exec are asked for ("view" grants neither).
    kubeconfig = service_account_kubeconfig(namespace, "view", name="viewer")
    data = base.model_dump(mode="json", exclude_none=True)
    data["kubernetes"]["kubeconfig"] = str(kubeconfig)
    data["diagnostics"] = {"heap_dump": {"enabled": True}}
    data["playbooks"] = [{"name": "dump", "alerts": ["oom_killed"], "actions": ["raise_memory", "heap_dump"]}]
    out = io.StringIO()
    assert await doctoring.diagnose(settings.Settings.model_validate(data), out=out) == 1
    text = out.getvalue()
    missing = [line.split()[:3] for line in text.splitlines() if line.startswith("MISSING")]
    assert ["MISSING", "get", "core/pods/exec"] in missing
    assert ["MISSING", "create", "core/pods/exec"] in missing
    assert "heap dumps: enabled in dump (pods/exec get and create, checked above)" in text
