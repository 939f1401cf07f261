"""The engine's diagnostics and silences, end to end: POST /webhook → mitigation → silence, previous log and
heap dump, against the real control plane, kwok's kubelet endpoint and the real Alertmanager.

Aspects covered: after a raise, a silence for the workload's alert is created in Alertmanager (visible with
amtool), its id is kept in the ledger entry and told in the thread; capture_diagnostics puts the OOM-killed
container's matching previous-log lines into the notice and the Kubernetes Event; heap_dump claims the
workload and runs its runtime's command through pods/exec (exit code, path and size in the notice), and a
second kill within the cooldown gets no second dump; a failed rollout expires the silence early.
"""

from __future__ import annotations

import datetime
import json
import subprocess
from collections.abc import Callable
from typing import Any

import pytest

from responder.logic import dumping
from responder.logic.actions import heap_dump as heap_dump_pure
from responder.models import ledgers, notices
from tests.alertmanager.conftest import start_alertmanager  # noqa: F401 - a fixture used below
from tests.integration.diagnostics.conftest import Kubelet, cri_lines
from tests.integration.mitigations.conftest import Responder, responder_factory  # noqa: F401 - fixture
from tests.kubeplane import incidents

pytestmark = pytest.mark.integration

DEPLOYMENT = "checkout"


def deployment(namespace: str, *, memory: str = "128Mi", image: str = "registry.invalid/app:1") -> Any:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": DEPLOYMENT,
            "namespace": namespace,
            "annotations": {dumping.RUNTIME_ANNOTATION: "fake"},
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": DEPLOYMENT}},
            "template": {
                "metadata": {"labels": {"app": DEPLOYMENT}},
                "spec": {
                    "nodeSelector": {"type": "kwok-diag"},
                    # Only the diag node's own taint: a cordoned node stays unschedulable for these pods.
                    "tolerations": [{"key": "diag-only", "operator": "Exists"}],
                    "terminationGracePeriodSeconds": 0,
                    "containers": [
                        {
                            "name": "app",
                            "image": image,
                            "resources": {"limits": {"memory": memory}, "requests": {"memory": memory}},
                        }
                    ],
                },
            },
        },
    }


def amtool(url: str, *args: str) -> Any:
    proc = subprocess.run(
        ["amtool", f"--alertmanager.url={url}", *args, "-o", "json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return json.loads(proc.stdout or "null")


async def running_pod(kube_api: Any, namespace: str) -> dict[str, Any]:
    [pod] = await incidents.wait_for_running_pods(kube_api, namespace, selector=f"app={DEPLOYMENT}", count=1)
    return pod


async def test_a_mitigation_is_silenced_and_its_evidence_collected(
    kubelet: Kubelet,
    kube_api: Any,
    responder_factory: Callable[..., Any],  # noqa: F811 - the fixture imported above
    start_alertmanager: Callable[..., Any],  # noqa: F811
) -> None:
    namespace = kubelet.namespace
    am = start_alertmanager("http://127.0.0.1:9/webhook")
    responder: Responder = await responder_factory(
        alertmanager={"url": am.url},
        diagnostics={
            "heap_dump": {
                "enabled": True,
                "runtimes": {
                    "fake": {
                        # kwok runs it on this machine: a stand-in for jcmd writing the dump.
                        "command": ["sh", "-c", 'head -c 4096 /dev/zero > "{path}" && stat -c %s "{path}"'],
                        "path": str(kubelet.exec_dir / "heap-{timestamp}.hprof"),
                    }
                },
            }
        },
        playbooks=[
            {
                "name": "oom-evidence",
                "alerts": ["oom_killed"],
                "actions": ["raise_memory", "capture_diagnostics", "heap_dump"],
            }
        ],
    )
    (kubelet.files / "app-previous.log").write_text(
        cri_lines(
            [
                "GET /cart 200",
                "session cache at 120 MiB, possible leak",
                "auth token=abcd1234 refused",
                "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory",
            ]
        )
    )
    kubelet.plane.kubectl("apply", "-f", "-", input_text=json.dumps(deployment(namespace)))
    pod = await running_pod(kube_api, namespace)
    await incidents.mark_oom_killed(kube_api, pod)
    labels = {"namespace": namespace, "pod": pod["metadata"]["name"], "container": "app"}

    await responder.post("OOMKilled", labels)

    assert responder.count("oom-evidence", "raise_memory", "done") == 1
    assert responder.count("oom-evidence", "capture_diagnostics", "done") == 1
    assert responder.count("oom-evidence", "heap_dump", "done") == 1, [
        (n.summary, n.detail) for n in responder.notifier.notices
    ]
    workload = await responder.kube.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/{DEPLOYMENT}")
    [entry] = ledgers.load(workload["metadata"]["annotations"][ledgers.ANNOTATION])

    # The silence: in Alertmanager, in the ledger entry, in the thread.
    assert entry.silence
    [silence] = amtool(am.url, "silence", "query")
    assert (silence["id"], silence["createdBy"], silence["status"]["state"]) == (
        entry.silence,
        "oom-responder",
        "active",
    )
    matchers = {m["name"]: m for m in silence["matchers"]}
    assert matchers["alertname"]["value"] == "OOMKilled" and matchers["namespace"]["value"] == namespace
    assert matchers["pod"]["isRegex"] and matchers["container"]["value"] == "app"
    [quiet] = [n for n in responder.notifier.notices if n.kind is notices.NoticeKind.SILENCE]
    assert quiet.silence_id == entry.silence
    assert quiet.summary.startswith(f"silenced OOMKilled for Deployment {namespace}/{DEPLOYMENT} until ")

    # The previous log: matching lines in the notice, redacted, and in the Event.
    [diag] = [n for n in responder.notifier.notices if n.action and n.action.value == "capture_diagnostics"]
    assert diag.log_lines == (
        "session cache at 120 MiB, possible leak",
        "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory",
    )
    assert "previous log of app: 2 matching lines (4 lines" in diag.detail
    events = await responder.kube.list(f"/apis/events.k8s.io/v1/namespaces/{namespace}/events")
    notes = [e.get("note", "") for e in events if e.get("action") == "capture_diagnostics"]
    assert any("JavaScript heap out of memory" in note for note in notes), notes

    # The heap dump: claimed on the workload, run through pods/exec, reported with its size.
    [dump] = [n for n in responder.notifier.notices if n.action and n.action.value == "heap_dump"]
    assert dump.detail.startswith(f"heap dump (fake) written in {pod['metadata']['name']}/app to ")
    assert "(4.0 KiB, exit 0)" in dump.detail
    claim = json.loads(workload["metadata"]["annotations"][heap_dump_pure.CLAIM_ANNOTATION])
    assert (claim["by"], claim["pod"]) == ("responder-test", pod["metadata"]["name"])

    # A new kill within the cooldown: raise again is blocked by its own cooldown, and no second dump.
    newer = await running_pod(kube_api, namespace)
    # The kubelet's finishedAt has whole seconds: a kill in the same second as the action reads as the one it
    # answered (which is what a fast answer to a kill looks like), so this one is a second later at least.
    later = max(datetime.datetime.now(datetime.UTC), entry.at + datetime.timedelta(seconds=1))
    await incidents.mark_oom_killed(kube_api, newer, now=later)
    await responder.post(
        "OOMKilled",
        {**labels, "pod": newer["metadata"]["name"]},
        starts_at=(datetime.datetime.now(datetime.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    assert responder.count("oom-evidence", "heap_dump", "done") == 1
    assert responder.count("oom-evidence", "heap_dump", "skipped") == 1
    skipped = [n for n in responder.notifier.notices if n.action and n.action.value == "heap_dump"][-1]
    assert skipped.detail.startswith("no heap dump: one was taken on this workload less than 3600s ago")


async def test_a_failed_rollout_expires_the_silence_early(
    kubelet: Kubelet,
    kube_api: Any,
    responder_factory: Callable[..., Any],  # noqa: F811
    start_alertmanager: Callable[..., Any],  # noqa: F811
) -> None:
    namespace = kubelet.namespace
    am = start_alertmanager("http://127.0.0.1:9/webhook")
    responder: Responder = await responder_factory(
        alertmanager={"url": am.url}, verification={"timeout_seconds": 3, "poll_seconds": 0.3}
    )
    kubelet.plane.kubectl(
        "delete", "deployment", "-n", namespace, DEPLOYMENT, "--ignore-not-found", "--wait=true"
    )
    kubelet.plane.kubectl("apply", "-f", "-", input_text=json.dumps(deployment(namespace)))
    pod = await running_pod(kube_api, namespace)
    await incidents.mark_oom_killed(kube_api, pod)
    # The raised pods can go nowhere: the only node they fit is cordoned, so the rollout cannot complete.
    kubelet.plane.kubectl("cordon", kubelet.node)
    try:
        await responder.post(
            "OOMKilled", {"namespace": namespace, "pod": pod["metadata"]["name"], "container": "app"}
        )
    finally:
        kubelet.plane.kubectl("uncordon", kubelet.node)
    silences = [n for n in responder.notifier.notices if n.kind is notices.NoticeKind.SILENCE]
    assert silences, [n.summary for n in responder.notifier.notices]
    silence_id = silences[0].silence_id
    assert silence_id
    assert any(
        n.kind is notices.NoticeKind.VERIFICATION and n.outcome and n.outcome.value == "failed"
        for n in responder.notifier.notices
    )
    assert silences[-1].summary.startswith(f"silence {silence_id} expired early: the rollout of ")
    [expired] = [s for s in amtool(am.url, "silence", "query", "--expired") if s["id"] == silence_id]
    assert expired["status"]["state"] == "expired"
