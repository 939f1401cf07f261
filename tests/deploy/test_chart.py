"""The Helm chart, rendered with helm for the default values and for non-default ones.

Aspects covered:
* `helm lint` passes for both value sets;
* values.schema.json rejects bad values (a string for replicaCount, an unknown key, an unknown RBAC scope),
  and the templates refuse what the schema cannot express (grace period not above the shutdown timeout,
  memory request differing from the limit, namespaced scope without namespaces, RBAC switches that disagree
  with the playbooks);
* the Deployment: two replicas spread across nodes, POD_NAME/POD_NAMESPACE from the downward API, grace period
  above the shutdown timeout, the restricted security context, memory request equal to the limit, probes on
  /healthz and /readyz, config from the ConfigMap, secrets mounted as files that the config points at;
* the rendered config file is a valid service configuration (the service's own Settings model);
* RBAC as one ClusterRole, or as one Role per listed namespace with the same rules, never wildcards or
  Secrets; the state ConfigMap's rule restricted by resourceNames except `create`;
* the optional ServiceMonitor, NetworkPolicy (Alertmanager and Prometheus only) and PrometheusRule (the
  unit-tested rules, runbook address replaced);
* the conventions of kube-prometheus-stack / bitnami charts: `helm template` and `helm lint` without
  `--kube-version`; the schema generated from the settings model refuses a config typo at install; the
  Grafana dashboard ConfigMap for the sidecar (off by default); additionalLabels and relabelings on the
  ServiceMonitor and PrometheusRule; extraEnv/extraVolumes/extraVolumeMounts; security contexts overridable
  (OpenShift); a webhook Secret the chart creates, with a checksum that rolls the pods; the `helm test` hook
  (outside the Service's selector; its script passes against a real `serve` and fails with a wrong token);
  a chart README that lists every value.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from responder.models import settings
from tests.deploy import tooling

NON_DEFAULT: dict[str, Any] = {
    "rbac": {"scope": "namespaced", "namespaces": ["shop", "search"], "podResize": True},
    "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
    "networkPolicy": {"enabled": True},
    "prometheusRule": {"enabled": True, "runbookUrl": "https://wiki.internal/runbooks/RB-010"},
    "slack": {"tokenSecret": {"name": "slack-bot", "key": "bot-token"}},
    "prometheus": {
        "url": "http://kube-prometheus-stack-prometheus.monitoring.svc:9090",
        "tokenSecret": {"name": "prometheus-reader", "key": "token"},
    },
    "image": {"digest": "sha256:" + "0123456789abcdef" * 4},
    "config": {
        "mode": "enforce",
        "notifiers": {"slack": {"channel": "#incidents"}},
        "playbooks": [
            {
                "name": "oom-raise-memory",
                "alerts": ["oom_killed"],
                "actions": [{"raise_memory": {"resize_in_place": True, "max": "4Gi"}}],
            }
        ],
    },
}


def _kinds(documents: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in documents if d["kind"] == kind]


def _one(documents: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = _kinds(documents, kind)
    return found


@pytest.fixture(scope="module")
def default_docs(helm: Path) -> list[dict[str, Any]]:
    return tooling.render_documents(helm)


@pytest.fixture(scope="module")
def custom_docs(helm: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return tooling.render_documents(
        helm, values=NON_DEFAULT, values_dir=tmp_path_factory.mktemp("values"), namespace="ops"
    )


def _config(documents: list[dict[str, Any]]) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(_one(documents, "ConfigMap")["data"]["config.yaml"])
    return loaded


def _container(documents: list[dict[str, Any]]) -> dict[str, Any]:
    (container,) = _one(documents, "Deployment")["spec"]["template"]["spec"]["containers"]
    return dict(container)


@pytest.mark.parametrize("values", [None, NON_DEFAULT], ids=["default-values", "non-default-values"])
def test_helm_lint_passes(helm: Path, tmp_path: Path, values: dict[str, Any] | None) -> None:
    args = ["--values", str(tmp_path / "values.yaml")] if values else []
    if values:
        (tmp_path / "values.yaml").write_text(yaml.safe_dump(values))
    result = tooling.run(
        [helm, "lint", "--strict", tooling.CHART, "--kube-version", tooling.KUBE_VERSION, *args]
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("values", "message"),
    [
        pytest.param({"replicaCount": "two"}, "/replicaCount", id="string-replica-count"),
        pytest.param({"replicaCount": 0}, "/replicaCount", id="zero-replicas"),
        pytest.param({"replicas": 3}, "replicas", id="unknown-key"),
        pytest.param({"rbac": {"scope": "everywhere"}}, "/rbac/scope", id="unknown-rbac-scope"),
        pytest.param({"config": {"mode": "yolo"}}, "/config/mode", id="unknown-mode"),
        pytest.param({"image": {"digest": "latest"}}, "/image/digest", id="digest-not-sha256"),
        pytest.param(
            {"terminationGracePeriodSeconds": 20},
            "must be greater than config.server.shutdown_timeout_seconds",
            id="grace-not-above-shutdown-timeout",
        ),
        pytest.param(
            {"resources": {"requests": {"memory": "128Mi"}, "limits": {"memory": "256Mi"}}},
            "must equal resources.limits.memory",
            id="memory-request-below-limit",
        ),
        pytest.param(
            {"rbac": {"scope": "namespaced"}}, "needs at least one namespace", id="namespaced-no-namespaces"
        ),
        pytest.param({"rbac": {"verticalPodAutoscalers": False}}, "check_vpa", id="vpa-rule-off-but-checked"),
        pytest.param(
            {
                "config": {
                    "playbooks": [
                        {
                            "name": "p",
                            "alerts": ["oom_killed"],
                            "actions": [{"raise_memory": {"resize_in_place": True}}],
                        }
                    ]
                }
            },
            "rbac.podResize",
            id="resize-without-its-rule",
        ),
    ],
)
def test_chart_refuses_bad_values(helm: Path, tmp_path: Path, values: dict[str, Any], message: str) -> None:
    result = tooling.render(helm, values=values, values_dir=tmp_path)
    assert result.returncode != 0
    assert message in result.stderr


def test_deployment_runs_two_replicas_spread_across_nodes(default_docs: list[dict[str, Any]]) -> None:
    deployment = _one(default_docs, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    (spread,) = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["labelSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    pdb = _one(default_docs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]
    assert pdb["spec"]["maxUnavailable"] == 1


def test_one_replica_gets_no_disruption_budget_that_would_block_drains(helm: Path, tmp_path: Path) -> None:
    documents = tooling.render_documents(helm, values={"replicaCount": 1}, values_dir=tmp_path)
    assert _kinds(documents, "PodDisruptionBudget") == []


def test_pod_knows_its_name_and_namespace_from_the_downward_api(default_docs: list[dict[str, Any]]) -> None:
    env = {e["name"]: e for e in _container(default_docs)["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert env["OOM_RESPONDER_CONFIG"]["value"] == "/etc/oom-responder/config.yaml"


def test_grace_period_exceeds_the_shutdown_timeout(default_docs: list[dict[str, Any]]) -> None:
    grace = _one(default_docs, "Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    config = settings.Settings.model_validate(_config(default_docs))
    assert grace > config.server.shutdown_timeout_seconds


@pytest.mark.parametrize("which", ["default", "custom"])
def test_security_context_is_restricted(
    which: str, default_docs: list[dict[str, Any]], custom_docs: list[dict[str, Any]]
) -> None:
    documents = default_docs if which == "default" else custom_docs
    pod = _one(documents, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    context = _container(documents)["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}


def test_memory_request_equals_limit_and_probes_hit_health_endpoints(
    default_docs: list[dict[str, Any]],
) -> None:
    container = _container(default_docs)
    assert container["resources"]["requests"]["memory"] == container["resources"]["limits"]["memory"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    (port,) = container["ports"]
    assert port["containerPort"] == settings.Settings.model_validate(_config(default_docs)).server.port
    service = _one(default_docs, "Service")
    assert service["spec"]["ports"][0]["targetPort"] == "http"


@pytest.mark.parametrize("which", ["default", "custom"])
def test_rendered_config_is_a_valid_service_configuration(
    which: str, default_docs: list[dict[str, Any]], custom_docs: list[dict[str, Any]]
) -> None:
    documents = default_docs if which == "default" else custom_docs
    config = settings.Settings.model_validate(_config(documents))
    namespace = _one(documents, "Deployment")["metadata"]["namespace"]
    assert config.kubernetes.own_namespace == namespace
    assert config.mode == (settings.Mode.DRY_RUN if which == "default" else settings.Mode.ENFORCE)


def _mounted_files(documents: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """Mounted file path → (Secret name, key), for every Secret volume."""
    pod = _one(documents, "Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    files: dict[str, tuple[str, str]] = {}
    for mount in _container(documents)["volumeMounts"]:
        secret = volumes[mount["name"]].get("secret")
        if secret:
            for item in secret["items"]:
                files[f"{mount['mountPath']}/{item['path']}"] = (secret["secretName"], item["key"])
    return files


def test_secrets_are_mounted_as_files_the_config_points_at(custom_docs: list[dict[str, Any]]) -> None:
    config = settings.Settings.model_validate(_config(custom_docs))
    files = _mounted_files(custom_docs)
    assert config.auth.bearer_token_file is not None
    assert files[config.auth.bearer_token_file] == ("oom-responder-webhook", "token")
    assert config.notifiers.slack.enabled is True
    assert config.notifiers.slack.token_file is not None
    assert files[config.notifiers.slack.token_file] == ("slack-bot", "bot-token")
    assert config.prometheus.url == "http://kube-prometheus-stack-prometheus.monitoring.svc:9090"
    assert config.prometheus.bearer_token_file is not None
    assert files[config.prometheus.bearer_token_file] == ("prometheus-reader", "token")
    assert not any("secretKeyRef" in str(e) for e in _container(custom_docs)["env"]), "files, not env"


def test_config_change_rolls_the_pods(helm: Path, tmp_path: Path, default_docs: list[dict[str, Any]]) -> None:
    changed = tooling.render_documents(helm, values={"config": {"mode": "enforce"}}, values_dir=tmp_path)

    def checksum(documents: list[dict[str, Any]]) -> str:
        return str(
            _one(documents, "Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        )

    assert checksum(changed) != checksum(default_docs)


def _all_rules(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [rule for d in documents if d["kind"] in ("Role", "ClusterRole") for rule in d["rules"]]


@pytest.mark.parametrize("which", ["default", "custom"])
def test_rbac_has_no_wildcards_and_no_secrets(
    which: str, default_docs: list[dict[str, Any]], custom_docs: list[dict[str, Any]]
) -> None:
    for rule in _all_rules(default_docs if which == "default" else custom_docs):
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], rule
        assert "secrets" not in rule["resources"], rule
        assert not {"delete", "deletecollection", "escalate", "bind", "impersonate"} & set(rule["verbs"]), (
            rule
        )


def test_cluster_scope_binds_one_cluster_role_to_the_service_account(
    default_docs: list[dict[str, Any]],
) -> None:
    account = _one(default_docs, "ServiceAccount")["metadata"]
    bindings = {b["roleRef"]["name"]: b for b in _kinds(default_docs, "ClusterRoleBinding")}
    workload_role = next(
        r
        for r in _kinds(default_docs, "ClusterRole")
        if any("pods" in rule["resources"] for rule in r["rules"])
    )
    subjects = bindings[workload_role["metadata"]["name"]]["subjects"]
    assert subjects == [
        {"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}
    ]
    own_roles = _kinds(default_docs, "Role")
    assert sorted(
        (r["metadata"]["name"].rsplit("-", 1)[-1], r["metadata"]["namespace"]) for r in own_roles
    ) == [
        ("state", "oom-responder"),
        ("ups", "oom-responder"),
    ], "only the state Role and the follow-ups Role, both in the service's namespace"


def test_namespaced_scope_grants_the_same_rules_per_listed_namespace_only(
    default_docs: list[dict[str, Any]], custom_docs: list[dict[str, Any]]
) -> None:
    cluster_rules = next(
        r["rules"]
        for r in _kinds(default_docs, "ClusterRole")
        if any("pods" in x["resources"] for x in r["rules"])
    )
    roles = {
        r["metadata"]["namespace"]: r
        for r in _kinds(custom_docs, "Role")
        if not r["metadata"]["name"].endswith(("-state", "-follow-ups"))
    }
    assert set(roles) == {"shop", "search"}
    pod_resize = {"apiGroups": [""], "resources": ["pods/resize"], "verbs": ["patch"]}
    for role in roles.values():
        assert [r for r in role["rules"] if r != pod_resize] == cluster_rules
        assert pod_resize in role["rules"]
    bound = {b["metadata"]["namespace"] for b in _kinds(custom_docs, "RoleBinding")}
    assert bound == {"shop", "search", "ops"}
    assert settings.Settings.model_validate(_config(custom_docs)).kubernetes.namespaces == ["shop", "search"]
    # Only SelfSubjectAccessReviews stay cluster-wide: they reveal the service's own permissions, nothing else.
    (cluster_role,) = _kinds(custom_docs, "ClusterRole")
    assert cluster_role["rules"] == [
        {
            "apiGroups": ["authorization.k8s.io"],
            "resources": ["selfsubjectaccessreviews"],
            "verbs": ["create"],
        }
    ]


def test_state_configmap_rule_is_limited_by_name_except_create(default_docs: list[dict[str, Any]]) -> None:
    state = next(r for r in _kinds(default_docs, "Role") if r["metadata"]["name"].endswith("-state"))
    defaults = settings.GuardrailSettings()
    named = [r for r in state["rules"] if r.get("resourceNames")]
    unnamed = [r for r in state["rules"] if not r.get("resourceNames")]
    assert named == [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": [defaults.state_name],
            "verbs": ["get", "update"],
        }
    ]
    # create cannot be restricted by resourceNames: the name is not known to the authorizer before creation.
    assert unnamed == [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]}]


def test_no_prometheus_by_default(default_docs: list[dict[str, Any]]) -> None:
    config = settings.Settings.model_validate(_config(default_docs))
    assert config.prometheus.url is None
    assert "prometheus-token" not in str(_one(default_docs, "Deployment"))


def test_optional_objects_are_off_by_default(default_docs: list[dict[str, Any]]) -> None:
    kinds = {d["kind"] for d in default_docs}
    assert not kinds & {"ServiceMonitor", "NetworkPolicy", "PrometheusRule", "Secret"}
    assert [d["metadata"]["name"] for d in _kinds(default_docs, "ConfigMap")] == ["responder-oom-responder"]


def test_service_monitor_scrapes_the_metrics_port(custom_docs: list[dict[str, Any]]) -> None:
    monitor = _one(custom_docs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["endpoints"][0]["port"] == "http"
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert monitor["spec"]["selector"]["matchLabels"] == _one(custom_docs, "Service")["spec"]["selector"]


def test_network_policy_admits_only_alertmanager_prometheus_and_the_other_replicas(
    custom_docs: list[dict[str, Any]],
) -> None:
    policy = _one(custom_docs, "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (ingress,) = policy["spec"]["ingress"]
    *peers, helm_test = ingress["from"]
    apps = [peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for peer in peers]
    assert apps == ["alertmanager", "prometheus", "oom-responder"]
    alertmanager, prometheus, replicas = peers
    assert "namespaceSelector" in alertmanager and "namespaceSelector" in prometheus
    # A replica shutting down hands what it could not finish to a live one (server.handoff_url), in its own
    # namespace only (no namespaceSelector) and only this release's pods.
    assert "namespaceSelector" not in replicas
    assert replicas["podSelector"]["matchLabels"] == policy["spec"]["podSelector"]["matchLabels"]
    # `helm test`'s own pod, in the release's namespace only (no namespaceSelector).
    assert helm_test == {
        "podSelector": {
            "matchLabels": {
                "app.kubernetes.io/instance": "responder",
                "app.kubernetes.io/component": "helm-test",
            }
        }
    }
    assert ingress["ports"] == [{"port": "http", "protocol": "TCP"}]


def test_prometheus_rule_carries_the_tested_rules_with_the_runbook_replaced(
    custom_docs: list[dict[str, Any]],
) -> None:
    rule = _one(custom_docs, "PrometheusRule")
    source = (tooling.REPO / "config" / "alert-rules.yaml").read_text()
    expected = yaml.safe_load(
        source.replace("https://runbooks.example.com/RB-010", "https://wiki.internal/runbooks/RB-010")
    )
    assert rule["spec"] == expected
    assert "runbooks.example.com" not in yaml.safe_dump(rule)


def test_image_is_pulled_by_digest_when_one_is_given(
    default_docs: list[dict[str, Any]], custom_docs: list[dict[str, Any]]
) -> None:
    assert _container(default_docs)["image"] == "oom-responder:0.1.0"
    assert _container(custom_docs)["image"] == "oom-responder@sha256:" + "0123456789abcdef" * 4


# ---- conventions of the charts users already run (kube-prometheus-stack, bitnami) -----------------------


def test_helm_template_and_lint_work_without_kube_version(helm: Path) -> None:
    # checkov's helm scan and other tools render the chart without --kube-version (helm then assumes its
    # built-in default, v1.20 for a helm built from source).
    rendered = tooling.run([helm, "template", "responder", tooling.CHART])
    assert rendered.returncode == 0, rendered.stderr
    assert "kind: Deployment" in rendered.stdout
    linted = tooling.run([helm, "lint", "--strict", tooling.CHART])
    assert linted.returncode == 0, linted.stdout + linted.stderr


@pytest.mark.parametrize(
    ("config", "message"),
    [
        pytest.param({"sever": {"port": 8080}}, "sever", id="typo-top-level"),
        pytest.param({"guardrails": {"max_memroy": "4Gi"}}, "max_memroy", id="typo-nested"),
        pytest.param(
            {"guardrails": {"max_memory": "lots"}}, "/config/guardrails/max_memory", id="bad-quantity"
        ),
        pytest.param({"dedup": {"ttl_seconds": "an hour"}}, "/config/dedup", id="wrong-type"),
        pytest.param(
            {"playbooks": [{"name": "p", "alerts": ["oom_killed"], "actions": ["explode"]}]},
            "/config/playbooks/0/actions/0",
            id="unknown-action",
        ),
    ],
)
def test_a_config_typo_fails_the_install_not_the_pod(
    helm: Path, tmp_path: Path, config: dict[str, Any], message: str
) -> None:
    result = tooling.render(helm, values={"config": config}, values_dir=tmp_path)
    assert result.returncode != 0, "the schema let a bad config through"
    assert message in result.stderr
    assert "values don't meet the specifications of the schema" in result.stderr


def test_the_documented_example_config_installs(helm: Path, tmp_path: Path) -> None:
    example = yaml.safe_load((tooling.REPO / "config" / "responder.yaml").read_text())
    example.pop("auth", None)  # the chart fills in the token file it mounts
    documents = tooling.render_documents(helm, values={"config": example}, values_dir=tmp_path)
    assert settings.Settings.model_validate(_config(documents)).playbooks


def test_grafana_dashboard_configmap_for_the_sidecar(helm: Path, tmp_path: Path) -> None:
    shipped = tooling.CHART / "files" / "dashboard.json"
    source = tooling.REPO / "dashboards" / "oom-responder.json"
    assert shipped.read_text() == source.read_text(), (
        "copy dashboards/oom-responder.json to the chart's files/"
    )
    documents = tooling.render_documents(
        helm,
        values={"grafanaDashboard": {"enabled": True, "namespace": "monitoring", "annotations": {"f": "x"}}},
        values_dir=tmp_path,
    )
    (dashboard,) = [d for d in _kinds(documents, "ConfigMap") if d["metadata"]["name"].endswith("-dashboard")]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["namespace"] == "monitoring"
    assert dashboard["metadata"]["annotations"] == {"f": "x"}
    assert json.loads(dashboard["data"]["oom-responder.json"]) == json.loads(source.read_text())


def test_monitoring_objects_take_additional_labels_and_relabelings(helm: Path, tmp_path: Path) -> None:
    relabel = [{"targetLabel": "cluster", "replacement": "prod-eu"}]
    drop = [{"sourceLabels": ["__name__"], "regex": "python_gc_.*", "action": "drop"}]
    documents = tooling.render_documents(
        helm,
        values={
            "serviceMonitor": {
                "enabled": True,
                "additionalLabels": {"release": "kube-prometheus-stack"},
                "relabelings": relabel,
                "metricRelabelings": drop,
            },
            "prometheusRule": {"enabled": True, "additionalLabels": {"release": "kube-prometheus-stack"}},
        },
        values_dir=tmp_path,
    )
    monitor = _one(documents, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["relabelings"] == relabel
    assert endpoint["metricRelabelings"] == drop
    assert _one(documents, "PrometheusRule")["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_extra_env_volumes_and_mounts_reach_the_container(helm: Path, tmp_path: Path) -> None:
    documents = tooling.render_documents(
        helm,
        values={
            "extraEnv": [
                {"name": "HTTPS_PROXY", "value": "http://proxy.internal:3128"},
                {"name": "SSL_CERT_FILE", "value": "/etc/ssl/private-ca/ca.crt"},
            ],
            "extraVolumes": [{"name": "private-ca", "configMap": {"name": "private-ca"}}],
            "extraVolumeMounts": [
                {"name": "private-ca", "mountPath": "/etc/ssl/private-ca", "readOnly": True}
            ],
        },
        values_dir=tmp_path,
    )
    container = _container(documents)
    env = {e["name"]: e for e in container["env"]}
    assert env["HTTPS_PROXY"]["value"] == "http://proxy.internal:3128"
    assert "POD_NAME" in env, "the chart's own variables stay"
    assert {"name": "private-ca", "mountPath": "/etc/ssl/private-ca", "readOnly": True} in container[
        "volumeMounts"
    ]
    pod = _one(documents, "Deployment")["spec"]["template"]["spec"]
    assert {"name": "private-ca", "configMap": {"name": "private-ca"}} in pod["volumes"]


def test_security_contexts_are_overridable_for_openshift(helm: Path, tmp_path: Path) -> None:
    # OpenShift's restricted SCC assigns the UID from the namespace's range: the chart must not pin one.
    unpinned = {"runAsUser": None, "runAsGroup": None}
    documents = tooling.render_documents(
        helm,
        values={"podSecurityContext": {**unpinned, "fsGroup": None}, "securityContext": unpinned},
        values_dir=tmp_path,
    )
    pod = _one(documents, "Deployment")["spec"]["template"]["spec"]
    container = _container(documents)
    for context in (pod["securityContext"], container["securityContext"]):
        assert not {"runAsUser", "runAsGroup", "fsGroup"} & set(context)
        assert context["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def _webhook_secret(documents: list[dict[str, Any]]) -> dict[str, Any]:
    return _one(documents, "Secret")


def test_the_chart_can_create_the_webhook_secret_and_rolls_the_pods_when_it_changes(
    helm: Path, tmp_path: Path
) -> None:
    def render(token: str) -> list[dict[str, Any]]:
        values = {"webhook": {"tokenSecret": {"name": "", "create": True, "token": token}}}
        return tooling.render_documents(helm, values=values, values_dir=tmp_path)

    first, second = render("first-token"), render("second-token")
    secret = _webhook_secret(first)
    assert secret["metadata"]["name"] == "responder-oom-responder-webhook"
    assert base64.b64decode(secret["data"]["token"]) == b"first-token"
    config = settings.Settings.model_validate(_config(first))
    assert config.auth.bearer_token_file is not None
    assert _mounted_files(first)[config.auth.bearer_token_file] == (
        "responder-oom-responder-webhook",
        "token",
    )

    def checksum(documents: list[dict[str, Any]]) -> str:
        annotations = _one(documents, "Deployment")["spec"]["template"]["metadata"]["annotations"]
        return str(annotations["checksum/webhook-secret"])

    assert checksum(first) != checksum(second)
    generated = tooling.render_documents(
        helm, values={"webhook": {"tokenSecret": {"create": True}}}, values_dir=tmp_path
    )
    token = base64.b64decode(_webhook_secret(generated)["data"]["token"]).decode()
    assert len(token) == 64
    assert _webhook_secret(generated)["metadata"]["name"] == "oom-responder-webhook"


def _helm_test_pod(documents: list[dict[str, Any]]) -> dict[str, Any]:
    (pod,) = [
        d for d in _kinds(documents, "Pod") if d["metadata"]["annotations"].get("helm.sh/hook") == "test"
    ]
    return pod


def test_helm_test_pod_is_a_hook_outside_the_services_selector(default_docs: list[dict[str, Any]]) -> None:
    pod = _helm_test_pod(default_docs)
    selector = _one(default_docs, "Service")["spec"]["selector"]
    labels = pod["metadata"]["labels"]
    assert not all(labels.get(key) == value for key, value in selector.items())
    (container,) = pod["spec"]["containers"]
    assert container["image"] == _container(default_docs)["image"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["OOM_RESPONDER_URL"] == "http://responder-oom-responder.oom-responder.svc:8080"
    assert env["OOM_RESPONDER_TOKEN_FILE"] == "/etc/oom-responder/webhook/token"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


async def test_the_helm_test_script_passes_against_a_serving_release_and_fails_without_the_token(
    default_docs: list[dict[str, Any]], tmp_path: Path
) -> None:
    (container,) = _helm_test_pod(default_docs)["spec"]["containers"]
    script = container["args"][0]
    token = tmp_path / "token"
    token.write_text("helm-test-token\n")
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")},
        "OOM_RESPONDER_WEBHOOK_TOKEN": "helm-test-token",
        "KUBECONFIG": str(tmp_path / "absent"),
    }
    serve = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "responder.cli", "serve", "--port", "0", "--host", "127.0.0.1",
        cwd=tooling.REPO, env=env, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert serve.stderr is not None
        while True:
            line = await asyncio.wait_for(serve.stderr.readline(), timeout=60)
            assert line, "serve exited before listening"
            record = json.loads(line)
            if record["message"] == "listening":
                break
        url = f"http://{record['addresses'][0]}"

        async def check(token_file: str) -> tuple[int, str]:
            checker = await asyncio.create_subprocess_exec(
                sys.executable, "-c", script,
                env={**os.environ, "OOM_RESPONDER_URL": url, "OOM_RESPONDER_TOKEN_FILE": token_file},
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
            out, _ = await asyncio.wait_for(checker.communicate(), timeout=60)
            return int(checker.returncode or 0), out.decode()

        code, output = await check(str(token))
        assert code == 0, output
        assert "readyz: 200" in output
        assert "'ignored': 1" in output
        token.write_text("wrong-token\n")
        code, output = await check(str(token))
        assert code == 1
        assert "webhook: refused: 401" in output
    finally:
        serve.send_signal(signal.SIGTERM)
        await asyncio.wait_for(serve.wait(), timeout=60)


def _value_paths(values: dict[str, Any], prefix: str = "") -> list[str]:
    paths: list[str] = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        # A mapping of free-form entries (labels, selectors, the service config) is one value.
        if isinstance(value, dict) and value and path not in _OPAQUE:
            paths.extend(_value_paths(value, f"{path}."))
        else:
            paths.append(path)
    return paths


_OPAQUE = {
    "config",
    "resources",
    "livenessProbe",
    "readinessProbe",
    "podSecurityContext",
    "securityContext",
    "grafanaDashboard.labels",
    "networkPolicy.alertmanager.namespaceSelector",
    "networkPolicy.alertmanager.podSelector",
    "networkPolicy.prometheus.namespaceSelector",
    "networkPolicy.prometheus.podSelector",
}


def test_the_chart_readme_lists_every_value() -> None:
    values = yaml.safe_load((tooling.CHART / "values.yaml").read_text())
    readme = (tooling.CHART / "README.md").read_text()
    missing = [path for path in _value_paths(values) if f"| `{path}` |" not in readme]
    assert missing == [], f"charts/oom-responder/README.md does not list: {missing}"


def test_a_generated_token_is_the_one_the_checksum_covers(helm: Path, tmp_path: Path) -> None:
    documents = tooling.render_documents(
        helm, values={"webhook": {"tokenSecret": {"create": True}}}, values_dir=tmp_path
    )
    secret = _webhook_secret(documents)
    annotations = _one(documents, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    given = tooling.render_documents(
        helm,
        values={
            "webhook": {
                "tokenSecret": {"create": True, "token": base64.b64decode(secret["data"]["token"]).decode()}
            }
        },
        values_dir=tmp_path,
    )
    same = _one(given, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert same["checksum/webhook-secret"] == annotations["checksum/webhook-secret"]
