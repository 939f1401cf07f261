"""Fixtures for the end-to-end alert path (test support).

* ``e2e_stack`` (module): a started :class:`~tests.e2e.stack.Stack` around the session's control plane:
  kube-state-metrics, Prometheus with the shortened rules, Alertmanager with the example route, the tap, the
  Slack stand-in and ``oom-responder serve`` in enforce mode. Skips, naming what is missing, when Prometheus,
  Alertmanager or kube-state-metrics is not installed (``scripts/test`` installs and builds them); builds
  kube-state-metrics first unless ``OOM_RESPONDER_BUILD_ASSETS=0``.
* ``e2e_namespace`` (function): a fresh namespace named ``e2e-…``, the only namespaces the service may act in.
* ``leak_history`` (module): the namespace and Deployment of the trend scenario, whose previous pod leaked for
  hours before the stack started: its series are backfilled into the stack's Prometheus, so the memory analysis
  has the history a real cluster's Prometheus would hold. The scenario creates the namespace itself.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e import histories
from tests.e2e import stack as stack_mod
from tests.kubeplane import assets as assets_mod
from tests.kubeplane import plane as plane_mod

NAMESPACE_PREFIX = "e2e-"


@pytest.fixture(scope="module")
def leak_history() -> histories.LeakHistory:
    return histories.leak_history(f"{NAMESPACE_PREFIX}leak-history-{secrets.token_hex(3)}", now=time.time())


def _kube_state_metrics(plane: plane_mod.KubePlane, log_dir: Path) -> Path:
    found = plane.assets.get("kube-state-metrics") or assets_mod.find_assets().get("kube-state-metrics")
    if found is not None:
        return found
    if os.environ.get("OOM_RESPONDER_BUILD_ASSETS", "1") == "0" or shutil.which("go") is None:
        pytest.skip(
            "kube-state-metrics is not built (scripts/test-assets builds it; OOM_RESPONDER_BUILD_ASSETS=0)"
        )
    try:
        assets_mod.build_assets(log_path=log_dir / "test-assets.log")
    except assets_mod.AssetsMissing as failed:
        pytest.skip(f"kube-state-metrics could not be built: {failed}")
    found = assets_mod.find_assets().get("kube-state-metrics")
    if found is None:
        pytest.skip("scripts/test-assets ran but kube-state-metrics is still missing")
    return found


@pytest.fixture(scope="module")
def e2e_stack(
    kube_plane: plane_mod.KubePlane,
    tmp_path_factory: pytest.TempPathFactory,
    leak_history: histories.LeakHistory,
) -> Iterator[stack_mod.Stack]:
    for binary, package in (
        (stack_mod.PROMETHEUS_BINARY, "prometheus"),
        (stack_mod.ALERTMANAGER_BINARY, "prometheus-alertmanager"),
    ):
        if not Path(binary).exists():
            pytest.skip(f"{binary} not found (scripts/test installs Debian's {package})")
    workdir = tmp_path_factory.mktemp("e2e-stack")
    ksm = _kube_state_metrics(kube_plane, workdir)
    own_namespace = f"oom-responder-{secrets.token_hex(3)}"
    kube_plane.create_namespace(own_namespace)
    stack = stack_mod.Stack(
        kubeconfig=kube_plane.kubeconfig,
        kwok_address=kube_plane.kwok_address,
        node_names=kube_plane.node_names,
        kube_state_metrics=ksm,
        workdir=workdir,
        own_namespace=own_namespace,
        namespaces_include=[f"{NAMESPACE_PREFIX}*"],
        history=leak_history.series,
    )
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()
        kube_plane.delete_namespace(own_namespace)


@pytest.fixture
def e2e_namespace(kube_plane: plane_mod.KubePlane, request: pytest.FixtureRequest) -> Iterator[str]:
    stem = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower().removeprefix("test_")).strip("-")
    name = f"{NAMESPACE_PREFIX}{stem[:40].rstrip('-')}-{secrets.token_hex(3)}"
    kube_plane.create_namespace(name)
    try:
        yield name
    finally:
        kube_plane.delete_namespace(name)
