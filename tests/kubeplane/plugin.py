"""pytest fixtures for the real control plane (test support; registered from tests/conftest.py).

Fixtures:

* ``kube_plane`` (session): a started :class:`~tests.kubeplane.plane.KubePlane`. If the binaries
  are missing it runs ``scripts/test-assets`` once (unless ``OOM_RESPONDER_BUILD_ASSETS=0``) and
  skips the requesting tests with the build error if that fails, so unit tests still run.
* ``namespace`` (function): a fresh namespace with its default ServiceAccount ready; deleted
  afterwards without waiting.
* ``kube_api`` (function, async): an admin ``kubernetes_asyncio`` ApiClient, closed afterwards.
* ``service_account_kubeconfig`` (function): ``(namespace, rules_or_role, *, cluster=False,
  name="tester") -> Path`` writing a token kubeconfig for a ServiceAccount with exactly that RBAC.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client as k8s_client

from tests.kubeplane import assets as assets_mod
from tests.kubeplane import plane as plane_mod

__all__ = ["kube_api", "kube_plane", "namespace", "service_account_kubeconfig"]

_PLANE_KEY = pytest.StashKey[plane_mod.KubePlane]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "integration: needs the real control plane (etcd, kube-apiserver, controllers, fake nodes)",
    )


def _announce(config: pytest.Config, message: str) -> None:
    """Write a line to the terminal even while output is captured (fixtures run captured)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capman = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return
    if capman is not None:
        with capman.global_and_fixture_disabled():
            reporter.write_line(message)
    else:
        reporter.write_line(message)


def _find_or_build_assets(config: pytest.Config, log_dir: Path) -> assets_mod.Assets:
    try:
        return assets_mod.find_assets()
    except assets_mod.AssetsMissing as missing:
        if os.environ.get("OOM_RESPONDER_BUILD_ASSETS", "1") == "0":
            pytest.skip(f"control-plane binaries unavailable: {missing} (OOM_RESPONDER_BUILD_ASSETS=0)")
        if shutil.which("go") is None:
            pytest.skip(
                f"control-plane binaries unavailable and 'go' is not installed to build them: {missing}"
            )
        log = log_dir / "test-assets.log"
        _announce(config, f"kubeplane: building control-plane binaries (first run takes ~20 min); log: {log}")
        try:
            assets_mod.build_assets(log_path=log)
            return assets_mod.find_assets()
        except assets_mod.AssetsMissing as failed:
            pytest.skip(f"control-plane binaries could not be built: {failed}")


@pytest.fixture(scope="session")
def kube_plane(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[plane_mod.KubePlane]:
    """The session's control plane (started once; stopped at session end, whatever happens)."""
    workdir = tmp_path_factory.mktemp("kubeplane")
    found = _find_or_build_assets(request.config, workdir)
    plane = plane_mod.KubePlane(found, workdir)
    plane.start()
    request.config.stash[_PLANE_KEY] = plane
    _announce(
        request.config,
        f"kubeplane: control plane ready in {plane.startup_seconds:.1f}s "
        f"(Kubernetes {plane.version.get('gitVersion')}, {len(plane.node_names)} kwok nodes, {plane.server})",
    )
    try:
        yield plane
    finally:
        plane.stop()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    plane = config.stash.get(_PLANE_KEY, None)
    if plane is not None:
        terminalreporter.write_line(
            f"control plane ready in {plane.startup_seconds:.1f}s "
            f"(Kubernetes {plane.version.get('gitVersion')}; logs in {plane.workdir / 'logs'})"
        )


def _namespace_name(node_name: str) -> str:
    """A DNS-1123 label derived from the test's name, unique per call."""
    stem = re.sub(r"[^a-z0-9-]+", "-", node_name.lower().removeprefix("test_")).strip("-")
    return f"{stem[:50].rstrip('-')}-{secrets.token_hex(3)}"


@pytest.fixture
def namespace(kube_plane: plane_mod.KubePlane, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test; its deletion is requested, not awaited (the GC finishes it)."""
    name = _namespace_name(request.node.name)
    kube_plane.create_namespace(name)
    try:
        yield name
    finally:
        kube_plane.delete_namespace(name)


@pytest.fixture
async def kube_api(kube_plane: plane_mod.KubePlane) -> AsyncIterator[k8s_client.ApiClient]:
    """An admin ``kubernetes_asyncio.client.ApiClient`` bound to this test's event loop."""
    api = await kube_plane.api_client()
    try:
        yield api
    finally:
        await api.close()


@pytest.fixture
def service_account_kubeconfig(kube_plane: plane_mod.KubePlane) -> Callable[..., Path]:
    """``(namespace, rules_or_role, *, cluster=False, name="tester") -> kubeconfig Path``.

    ``rules_or_role`` is a list of PolicyRule dicts (a Role, or a ClusterRole when ``cluster``,
    is created from them) or the name of an existing ClusterRole such as ``"view"`` (bound in
    ``namespace``, or cluster-wide when ``cluster``).
    """
    return kube_plane.service_account_kubeconfig
