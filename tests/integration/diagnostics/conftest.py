"""A kwok kubelet endpoint the real kube-apiserver proxies `pods/log` and `pods/exec` to (test support).

The session's plane runs kwok without a kubelet port (its nodes never serve logs). This module starts a
second kwok, managing only nodes annotated `kwok.x-k8s.io/node=diag`, with its server on a loopback port
that is also the nodes' kubelet port (`--node-port`; kwok's node stage writes it into
`status.daemonEndpoints.kubeletEndpoint.Port`, beside the InternalIP 127.0.0.1). The API server reaches it
there as it would a kubelet (HTTPS; it verifies no kubelet certificate unless
`--kubelet-certificate-authority` is set). kwok serves a pod's logs from files and its exec by running a
local command, as configured by `ClusterLogs` and `ClusterExec` resources in its `--config`, which are fixed
at start; hence one namespace per module, created before kwok starts.

Fixtures: ``kubelet`` (module): a :class:`Kubelet` with the namespace, the node, the log files and
``make_pod(name)``; kwok is stopped (its own process group) at teardown.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.kubeplane import plane as plane_mod

NODE_ANNOTATION = ("kwok.x-k8s.io/node", "diag")

CONTAINERS = ("app", "fresh", "big")
"""app: a previous log; fresh: never restarted (no previous log); big: a previous log larger than the bound."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cri_lines(lines: list[str]) -> str:
    """Lines in the CRI log format the kubelet (and kwok) read: `<RFC3339Nano> <stream> F <text>`."""
    return "".join(
        f"2026-12-01T10:00:{i % 60:02d}.000000000Z stdout F {line}\n" for i, line in enumerate(lines)
    )


@dataclasses.dataclass
class Kubelet:
    plane: plane_mod.KubePlane
    namespace: str
    node: str
    files: Path
    exec_dir: Path

    def make_pod(self, name: str) -> None:
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": {
                "nodeName": self.node,
                "tolerations": [{"operator": "Exists"}],
                "containers": [{"name": c, "image": "registry.invalid/app:1"} for c in CONTAINERS],
            },
        }
        self.plane.kubectl("apply", "-f", "-", input_text=json.dumps(pod))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            phase = self.plane.kubectl(
                "get", "pod", "-n", self.namespace, name, "-o", "jsonpath={.status.phase}"
            ).stdout
            if phase == "Running":
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"pod {name} not Running on {self.node}")
        # What the kubelet reports after an OOM kill of app and big: a restart and the terminated last state
        # (kwok's stage does not write again once the pod has its IP). fresh never restarted.
        statuses = [
            {
                "name": c,
                "ready": True,
                "restartCount": 0 if c == "fresh" else 1,
                "image": "registry.invalid/app:1",
                "imageID": "",
                "state": {"running": {"startedAt": "2026-12-01T10:01:00Z"}},
                "lastState": {}
                if c == "fresh"
                else {
                    "terminated": {
                        "exitCode": 137,
                        "reason": "OOMKilled",
                        "startedAt": "2026-12-01T09:00:00Z",
                        "finishedAt": "2026-12-01T10:00:59Z",
                    }
                },
            }
            for c in CONTAINERS
        ]
        self.plane.kubectl(
            "patch",
            "pod",
            "-n",
            self.namespace,
            name,
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps({"status": {"containerStatuses": statuses}}),
        )


@pytest.fixture(scope="module")
def kubelet(kube_plane: plane_mod.KubePlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubelet]:
    work = tmp_path_factory.mktemp("kwok-kubelet")
    files = work / "logs"
    files.mkdir()
    exec_dir = work / "exec"
    exec_dir.mkdir()
    namespace = f"diag-{secrets.token_hex(3)}"
    node = f"diag-node-{secrets.token_hex(2)}"
    kube_plane.create_namespace(namespace)
    resources = [
        {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "ClusterLogs",
            "metadata": {"name": "diag-logs"},
            "spec": {
                "selector": {"matchNamespaces": [namespace]},
                "logs": [
                    {
                        "containers": ["app"],
                        "logsFile": str(files / "app-current.log"),
                        "previousLogsFile": str(files / "app-previous.log"),
                    },
                    {"containers": ["fresh"], "logsFile": str(files / "fresh-current.log")},
                    {
                        "containers": ["big"],
                        "logsFile": str(files / "big-current.log"),
                        "previousLogsFile": str(files / "big-previous.log"),
                    },
                ],
            },
        },
        {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "ClusterExec",
            "metadata": {"name": "diag-exec"},
            "spec": {
                "selector": {"matchNamespaces": [namespace]},
                "execs": [{"local": {"workDir": str(exec_dir), "envs": [{"name": "LC_ALL", "value": "C"}]}}],
            },
        },
    ]
    config = work / "kwok-diag.yaml"
    config.write_text(yaml.safe_dump_all(resources))
    for name in ("app-current", "fresh-current", "big-current"):
        (files / f"{name}.log").write_text(cri_lines(["running"]))
    port = _free_port()
    log = (work / "kwok.log").open("wb")
    kwok = subprocess.Popen(
        [
            str(kube_plane.assets["kwok"]),
            f"--kubeconfig={kube_plane.kubeconfig}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={'='.join(NODE_ANNOTATION)}",
            "--manage-nodes-with-label-selector=",
            "--manage-single-node=",
            "--cidr=10.245.0.0/16",
            "--node-ip=127.0.0.1",
            f"--node-port={port}",
            f"--server-address=127.0.0.1:{port}",
            "--node-lease-duration-seconds=40",
            f"--config={plane_mod.KWOK_STAGES}",
            f"--config={config}",
        ],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        node_body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": node,
                "annotations": {NODE_ANNOTATION[0]: NODE_ANNOTATION[1]},
                "labels": {"type": "kwok-diag", "kubernetes.io/os": "linux"},
            },
            "spec": {"taints": [{"key": "diag-only", "effect": "NoSchedule"}]},
            "status": {
                "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "20"},
                "capacity": {"cpu": "4", "memory": "8Gi", "pods": "20"},
            },
        }
        kube_plane.kubectl("apply", "-f", "-", input_text=json.dumps(node_body))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if kwok.poll() is not None:
                raise AssertionError(f"kwok exited: {(work / 'kwok.log').read_text()[-2000:]}")
            port_seen = kube_plane.kubectl(
                "get", "node", node, "-o", "jsonpath={.status.daemonEndpoints.kubeletEndpoint.Port}"
            ).stdout
            if port_seen == str(port):
                break
            time.sleep(0.2)
        else:
            raise AssertionError("kwok did not initialize the diag node")
        yield Kubelet(plane=kube_plane, namespace=namespace, node=node, files=files, exec_dir=exec_dir)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(kwok.pid, signal.SIGTERM)
        try:
            kwok.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(kwok.pid, signal.SIGKILL)
            kwok.wait()
        log.close()
        kube_plane.kubectl("delete", "node", node, "--wait=false", check=False)
        kube_plane.delete_namespace(namespace)
