"""The service runs with exactly the chart's RBAC, as the chart's ServiceAccount, against the real API server.

Aspects covered:
* the chart installed with helm; the pipeline (`responder.engine.processing.Processor`, fed the way the webhook
  feeds it: normalize → route → work item) authenticates with a token of the chart's ServiceAccount from the
  TokenRequest API, and carries an OOMKilled alert to completion: the memory limit is raised with its ledger
  entry, the rollout is verified, an Event is recorded, no request is refused;
* taking away one verb of the OOMKilled path at a time (the chart's rule edited on the live cluster) turns
  the same alert into a refusal or a 403, so each of those verbs is needed.
"""

from __future__ import annotations

import datetime
import json
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from responder import metrics as metrics_mod
from responder.engine import processing
from responder.kube import client
from responder.kube import events as kube_events
from responder.kube import state as state_mod
from responder.logic import normalizing, routing
from responder.models import alerts, ledgers, notices, settings, work
from tests.deploy import test_install
from tests.kubeplane import incidents
from tests.kubeplane import plane as plane_mod

pytestmark = pytest.mark.integration


class Collected:
    """The notifier: keeps every notice (Slack is not part of this test)."""

    def __init__(self) -> None:
        self.notices: list[notices.Notice] = []

    def notify(self, notice: notices.Notice) -> None:
        self.notices.append(notice)


class Installed:
    """The chart installed once for the module, and a kubeconfig for its ServiceAccount."""

    def __init__(self, plane: plane_mod.KubePlane, namespace: str, release: str, kubeconfig: Path) -> None:
        self.plane = plane
        self.namespace = namespace
        self.release = release
        self.kubeconfig = kubeconfig
        self.name = f"{release}-oom-responder"

    def config(self) -> settings.Settings:
        """The config file the chart rendered, pointed at the ServiceAccount's kubeconfig."""
        configmap = json.loads(
            self.plane.kubectl("-n", self.namespace, "get", "configmap", self.name, "-o", "json").stdout
        )
        raw = yaml.safe_load(configmap["data"]["config.yaml"])
        raw.setdefault("kubernetes", {})["kubeconfig"] = str(self.kubeconfig)
        return settings.Settings.model_validate(raw)

    def cluster_role(self) -> dict[str, Any]:
        role: dict[str, Any] = json.loads(
            self.plane.kubectl("get", "clusterrole", self.name, "-o", "json").stdout
        )
        return role


def _token_kubeconfig(plane: plane_mod.KubePlane, namespace: str, account: str) -> Path:
    """A kubeconfig holding a TokenRequest token of the ServiceAccount, as a projected token in a pod."""
    request = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": 3600},
    }
    answer = plane.kubectl(
        "create", "--raw", f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token", "-f", "-",
        input_text=json.dumps(request),
    )  # fmt: skip
    token = json.loads(answer.stdout)["status"]["token"]
    return plane_mod.write_kubeconfig(
        plane.workdir / f"{namespace}-{account}.kubeconfig",
        server=plane.server,
        ca_path=plane.ca_path,
        user=f"system:serviceaccount:{namespace}:{account}",
        token=token,
        namespace=namespace,
    )


@pytest.fixture(scope="module")
def installed(
    kube_plane: plane_mod.KubePlane, helm: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Installed]:
    namespace = f"oom-responder-{secrets.token_hex(3)}"
    kube_plane.create_namespace(namespace)
    runner = test_install.Helm(helm, kube_plane, tmp_path_factory.mktemp("helm"))
    release = f"r{secrets.token_hex(3)}"
    try:
        kube_plane.kubectl(
            "-n", namespace, "create", "secret", "generic", "oom-responder-webhook", "--from-literal=token=t"
        )
        # wait=False: the pods are kwok's; the service under test runs in this process with the pods' identity.
        result = runner.install(release, namespace, {"config": {"mode": "enforce"}}, wait=False)
        assert result.returncode == 0, result.stderr
        account = f"{release}-oom-responder"
        yield Installed(kube_plane, namespace, release, _token_kubeconfig(kube_plane, namespace, account))
    finally:
        runner.uninstall_all()
        kube_plane.delete_namespace(namespace)


def _payload(namespace: str, pod: str, container: str) -> dict[str, Any]:
    starts = datetime.datetime.now(datetime.UTC).isoformat()
    labels = {
        "alertname": "OOMKilled",
        "namespace": namespace,
        "pod": pod,
        "container": container,
        "severity": "critical",
    }
    return {
        "version": "4", "groupKey": "{}:{alertname=\"OOMKilled\"}", "status": "firing", "receiver": "oom-responder",
        "groupLabels": {"alertname": "OOMKilled"}, "commonLabels": labels, "externalURL": "http://alertmanager",
        "alerts": [{"status": "firing", "labels": labels, "annotations": {}, "startsAt": starts,
                    "fingerprint": secrets.token_hex(8)}],
    }  # fmt: skip


async def _respond(
    config: settings.Settings, payload: dict[str, Any]
) -> tuple[metrics_mod.Metrics, Collected]:
    """What one replica does with one webhook payload, up to the end of the rollout verification."""
    metrics = metrics_mod.Metrics()
    collected = Collected()
    kube = await client.Kube.connect(settings=config.kubernetes, metrics=metrics)
    own = state_mod.own_namespace(config)
    processor = processing.Processor(
        settings=config,
        metrics=metrics,
        kube=kube,
        notifiers=collected,
        state_store=state_mod.StateStore(
            kube, namespace=state_mod.state_namespace(config, own_namespace=own), settings=config
        ),
        own_namespace=own,
    )
    try:
        parsed = alerts.WebhookPayload.model_validate(payload)
        for alert in parsed.alerts:
            event = normalizing.normalize(alert, payload=parsed, settings=config)
            assert event is not None
            item = work.WorkItem(
                event=event,
                playbook=routing.route(event, config.playbooks),
                received_at=datetime.datetime.now(datetime.UTC),
                queue_key=routing.queue_key(event, settings=config.alerts),
            )
            await processor.handle(item)
        await processor.wait_verifications()
    finally:
        await processor.close(5)
        await kube.close()
    return metrics, collected


@pytest.fixture
async def oom_killed(kube_api: Any, namespace: str) -> AsyncIterator[tuple[dict[str, Any], str]]:
    """A Deployment with a 128Mi limit whose first pod was just OOM-killed: (payload, deployment name)."""
    await incidents.create_deployment(kube_api, namespace, "cart", replicas=1)
    (pod,) = await incidents.wait_for_running_pods(kube_api, namespace, selector="app=cart", count=1)
    await incidents.mark_oom_killed(kube_api, pod)
    yield _payload(namespace, pod["metadata"]["name"], "app"), "cart"


def _sample(metrics: metrics_mod.Metrics, name: str, labels: dict[str, str]) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def _forbidden(metrics: metrics_mod.Metrics) -> float:
    return sum(
        sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == "oom_responder_kube_requests_total" and sample.labels.get("code") == "403"
    )


async def _memory_limit(kube_api: Any, namespace: str, name: str) -> tuple[str, list[ledgers.LedgerEntry]]:
    deployment = incidents.to_dict(
        kube_api, await incidents.client.AppsV1Api(kube_api).read_namespaced_deployment(name, namespace)
    )
    limit = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]
    return limit, ledgers.load(deployment["metadata"].get("annotations", {}).get(ledgers.ANNOTATION))


async def test_oom_killed_is_mitigated_with_exactly_the_chart_rbac(
    installed: Installed, oom_killed: tuple[dict[str, Any], str], kube_api: Any, namespace: str
) -> None:
    payload, name = oom_killed

    metrics, collected = await _respond(installed.config(), payload)

    limit, ledger = await _memory_limit(kube_api, namespace, name)
    assert limit == "228Mi", "128Mi raised by max(+100Mi, x1.2)"
    assert [entry.action for entry in ledger] == [settings.Action.RAISE_MEMORY]
    done = {"playbook": "oom-raise-memory", "action": "raise_memory", "result": "done"}
    assert _sample(metrics, "oom_responder_actions_total", done) == 1
    assert _forbidden(metrics) == 0
    events = json.loads(
        installed.plane.kubectl("-n", namespace, "get", "events.events.k8s.io", "-o", "json").stdout
    )["items"]
    assert any(
        e["regarding"].get("kind") == "Deployment"
        and e["regarding"]["name"] == name
        and e.get("reportingController")
        for e in events
    ), "an Event on the workload"
    assert collected.notices


# The verbs the OOMKilled → raise_memory path needs, each taken away in turn from the chart's rules, and
# what goes wrong without it: "refused" (nothing written), "unverified" (written, but the rollout cannot be
# followed and is reported failed), "unannounced" (written, but no Event on the workload).
OOM_PATH = [
    pytest.param("ClusterRole", "", "pods", "get", "refused", id="pods-get"),
    pytest.param("ClusterRole", "", "pods", "create", "refused", id="pods-create-dry-run-admission"),
    pytest.param("ClusterRole", "apps", "replicasets", "get", "refused", id="replicasets-get"),
    pytest.param("ClusterRole", "apps", "deployments", "get", "refused", id="deployments-get"),
    pytest.param("ClusterRole", "apps", "deployments", "patch", "refused", id="deployments-patch"),
    pytest.param("ClusterRole", "apps", "replicasets", "list", "unverified", id="replicasets-list"),
    pytest.param("ClusterRole", "", "events", "list", "unverified", id="events-list"),
    pytest.param("ClusterRole", "events.k8s.io", "events", "create", "unannounced", id="events-create"),
    pytest.param("Role", "", "configmaps", "get", "refused", id="state-get"),
    pytest.param("Role", "", "configmaps", "create", "refused", id="state-create"),
    pytest.param("Role", "", "configmaps", "update", "refused", id="state-update"),
]


def _without(role: dict[str, Any], group: str, resource: str, verb: str) -> dict[str, Any]:
    rules = []
    for rule in role["rules"]:
        if group in rule["apiGroups"] and resource in rule["resources"] and verb in rule["verbs"]:
            others = [r for r in rule["resources"] if r != resource]
            if others:
                rules.append({**rule, "resources": others})
            verbs = [v for v in rule["verbs"] if v != verb]
            if verbs:
                rules.append({**rule, "resources": [resource], "verbs": verbs})
        else:
            rules.append(rule)
    assert rules != role["rules"], f"the chart grants no {verb} on {group}/{resource}"
    return {k: v for k, v in role.items() if k != "metadata"} | {
        "metadata": {"name": role["metadata"]["name"]},
        "rules": rules,
    }


def _allowed(installed: Installed, group: str, resource: str, verb: str, namespace: str) -> bool:
    resource, _, subresource = resource.partition("/")
    args = ["auth", "can-i", verb, f"{resource}.{group}" if group else resource, "-n", namespace]
    if subresource:
        args += ["--subresource", subresource]
    return (
        installed.plane.kubectl(*args, kubeconfig=installed.kubeconfig, check=False).stdout.strip() == "yes"
    )


@pytest.mark.parametrize(("kind", "group", "resource", "verb", "effect"), OOM_PATH)
async def test_each_verb_of_the_oom_path_is_needed(
    *,
    installed: Installed,
    oom_killed: tuple[dict[str, Any], str],
    kube_api: Any,
    namespace: str,
    kind: str,
    group: str,
    resource: str,
    verb: str,
    effect: str,
) -> None:
    payload, name = oom_killed
    plane = installed.plane
    scope = ["-n", installed.namespace] if kind == "Role" else []
    role_name = installed.name + ("-state" if kind == "Role" else "")
    original = json.loads(plane.kubectl("get", kind.lower(), role_name, *scope, "-o", "json").stdout)
    checked_in = installed.namespace if kind == "Role" else namespace
    if (kind, verb) == ("Role", "create"):
        # An earlier test may have created the state object; create is needed by the first replica only.
        state_name = installed.config().guardrails.state_name
        plane.kubectl("-n", installed.namespace, "delete", "configmap", state_name, "--ignore-not-found")
    if (kind, verb) == ("Role", "update"):
        # update is what replaces an existing state object: make sure there is one.
        state_name = installed.config().guardrails.state_name
        plane.kubectl("-n", installed.namespace, "create", "configmap", state_name, check=False)
    plane.kubectl(
        "replace", *scope, "-f", "-", input_text=json.dumps(_without(original, group, resource, verb))
    )
    try:
        await incidents.wait_for(
            _async(lambda: not _allowed(installed, group, resource, verb, checked_in)),
            what=f"{verb} {group}/{resource} to be revoked",
        )
        metrics, _ = await _respond(installed.config(), payload)
    finally:
        plane.kubectl("replace", *scope, "-f", "-", input_text=json.dumps(_without_status(original)))

    assert _forbidden(metrics) >= 1, f"no request was refused without {verb} {group}/{resource}"
    labels = {"playbook": "oom-raise-memory", "action": "raise_memory"}
    done = _sample(metrics, "oom_responder_actions_total", {**labels, "result": "done"})
    failed = _sample(metrics, "oom_responder_actions_total", {**labels, "result": "failed"})
    limit, _ = await _memory_limit(kube_api, namespace, name)
    if effect == "refused":
        assert (done, limit) == (0, "128Mi")
    elif effect == "unverified":
        assert (done, failed, limit) == (1, 1, "228Mi")
    else:
        assert (done, failed, limit) == (1, 0, "228Mi")
        events = json.loads(
            plane.kubectl("-n", namespace, "get", "events.events.k8s.io", "-o", "json").stdout
        )
        assert not [
            e for e in events["items"] if e.get("reportingController") == kube_events.REPORTING_CONTROLLER
        ]


def _without_status(role: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in role.items() if k != "metadata"} | {
        "metadata": {"name": role["metadata"]["name"]}
    }


def _async(predicate: Any) -> Any:
    async def probe() -> bool:
        return bool(predicate())

    return probe
