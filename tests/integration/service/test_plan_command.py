"""`oom-responder plan` against the real control plane: the live decision per alert, and nothing written.

Covers: an OOMKilled alert on a managed Deployment previews the exact raise (128Mi → 228Mi); the same alert
on a Deployment that opted out shows the guardrail that would block it; a paused cluster shows `paused`;
neither workload nor the state object is changed by planning (resourceVersions unchanged, no state object
created); `--labels-only` does not consult the cluster.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client

from tests.kubeplane import incidents
from tests.kubeplane.plane import KubePlane

pytestmark = pytest.mark.integration


def _alert(namespace: str, pod: str) -> dict[str, Any]:
    return {
        "status": "firing",
        "labels": {
            "alertname": "OOMKilled",
            "namespace": namespace,
            "pod": pod,
            "container": "app",
            "severity": "critical",
        },
        "annotations": {},
        "startsAt": "2026-03-01T11:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "",
        "fingerprint": f"fp-{pod}",
    }


async def _plan(config: Path, payload: Path, *extra: str) -> list[dict[str, Any]]:
    process = await asyncio.create_subprocess_exec(
        "oom-responder",
        "plan",
        "--config",
        str(config),
        str(payload),
        "--output",
        "json",
        *extra,
        env=dict(os.environ),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, stderr.decode()
    plans: list[dict[str, Any]] = json.loads(stdout)
    return plans


async def test_plan_previews_live_decisions_and_writes_nothing(
    kube_plane: KubePlane, namespace: str, kube_api: client.ApiClient, tmp_path: Path
) -> None:
    apps = client.AppsV1Api(kube_api)
    core = client.CoreV1Api(kube_api)
    await incidents.create_deployment(kube_api, namespace, "managed", replicas=1)
    await incidents.create_deployment(
        kube_api, namespace, "optedout", replicas=1, annotations={"oom-responder.io/enabled": "false"}
    )
    pods = {}
    for name in ("managed", "optedout"):
        [pod] = await incidents.wait_for_running_pods(kube_api, namespace, selector=f"app={name}", count=1)
        await incidents.mark_oom_killed(kube_api, pod)
        pods[name] = pod["metadata"]["name"]
    before = {
        name: (await apps.read_namespaced_deployment(name, namespace)).metadata.resource_version
        for name in pods
    }
    payload = {
        "version": "4",
        "groupKey": "{}:{}",
        "status": "firing",
        "receiver": "oom-responder",
        "alerts": [_alert(namespace, pods["managed"]), _alert(namespace, pods["optedout"])],
    }
    payload_path = tmp_path / "payload.json"
    payload_path.write_text(json.dumps(payload))
    config_path = tmp_path / "responder.yaml"
    config_path.write_text(
        yaml.safe_dump(
            {
                "mode": "enforce",
                "kubernetes": {"kubeconfig": str(kube_plane.kubeconfig), "own_namespace": namespace},
                "guardrails": {"act_in_own_namespace": True},
            }
        )
    )

    managed, optedout = await _plan(config_path, payload_path)

    assert managed["live"]["allowed"] is True
    assert managed["live"]["target"] == f"{namespace}/Deployment/managed"
    assert (managed["live"]["action"], managed["live"]["from_value"], managed["live"]["to_value"]) == (
        "raise_memory",
        "128Mi",
        "228Mi",
    )
    assert optedout["live"]["allowed"] is False
    assert optedout["live"]["guardrail"] == "opt_out"
    after = {
        name: (await apps.read_namespaced_deployment(name, namespace)).metadata.resource_version
        for name in pods
    }
    assert after == before
    config_maps = await core.list_namespaced_config_map(namespace)
    assert "oom-responder-state" not in {cm.metadata.name for cm in config_maps.items}

    # Paused: every replica would refuse, and plan says so.
    pause = await asyncio.create_subprocess_exec(
        "oom-responder", "pause", "--config", str(config_path), env=dict(os.environ)
    )
    assert await asyncio.wait_for(pause.wait(), timeout=120) == 0
    managed, _ = await _plan(config_path, payload_path)
    assert managed["live"]["guardrail"] == "paused"

    [labels_only, _] = await _plan(config_path, payload_path, "--labels-only")
    assert labels_only["live"] is None
    assert labels_only["action"] == "raise_memory"
