"""Alerts refused at normalization, before any API request: names Kubernetes would not accept, and (in a
namespaced install) namespaces the service was not granted.

Covers: "..", ".", "/", upper case, a trailing newline, over-long names in the namespace, pod, container and
workload labels are refused as `invalid_name` naming the label and the rule; valid names (dots in pod and
workload names, 63- and 253-character names) pass; a refused value is shown cut short; with
`kubernetes.namespaces` set, other namespaces are refused as `out_of_scope` naming the granted ones; with it
empty (cluster scope) every valid namespace passes.
"""

from __future__ import annotations

import pytest

from responder.logic import normalizing
from responder.models import alerts, decisions, settings
from tests.unit import payloads


def _refusal(config: settings.Settings | None = None, **labels: str | None) -> decisions.Decision | None:
    config = config or settings.Settings()
    payload = alerts.WebhookPayload.model_validate(payloads.payload(payloads.alert("OOMKilled", **labels)))  # type: ignore[arg-type]  # label overrides
    event = normalizing.normalize(payload.alerts[0], payload=payload, settings=config)
    assert event is not None
    return normalizing.refuse(event, settings=config)


@pytest.mark.parametrize(
    ("labels", "label"),
    [
        pytest.param({"pod": ".."}, "pod", id="pod-dotdot"),
        pytest.param({"pod": "."}, "pod", id="pod-dot"),
        pytest.param({"namespace": ".."}, "namespace", id="namespace-dotdot"),
        pytest.param({"namespace": "a.b"}, "namespace", id="namespace-with-dot"),
        pytest.param({"pod": "api/../../namespaces"}, "pod", id="pod-slashes"),
        pytest.param({"pod": "API-1"}, "pod", id="pod-upper-case"),
        pytest.param({"pod": "api-1\n"}, "pod", id="pod-trailing-newline"),
        pytest.param({"pod": "-api"}, "pod", id="pod-leading-dash"),
        pytest.param({"container": "app.main"}, "container", id="container-with-dot"),
        pytest.param({"namespace": "n" * 64}, "namespace", id="namespace-64"),
        pytest.param({"pod": "p" * 254}, "pod", id="pod-254"),
        pytest.param({"workload": ".."}, "workload", id="workload-dotdot"),
    ],
)
def test_names_kubernetes_would_refuse_are_refused_naming_the_label(
    labels: dict[str, str], label: str
) -> None:
    refusal = _refusal(**labels)
    assert refusal is not None
    assert refusal.reason is decisions.Reason.INVALID_NAME
    assert refusal.detail.startswith(f"label {label}=")
    assert "names no object" in refusal.detail


@pytest.mark.parametrize(
    "labels",
    [
        pytest.param({}, id="ordinary"),
        pytest.param({"pod": "web.v2-5d8f7-abcde", "workload": "web.v2"}, id="dots-in-pod-and-workload"),
        pytest.param({"namespace": "n" * 63, "container": "c" * 63}, id="labels-at-63"),
        pytest.param({"pod": ".".join(["p" * 63] * 4)[:253]}, id="pod-at-253"),
        pytest.param({"pod": None, "container": None}, id="absent-names"),
    ],
)
def test_valid_names_pass(labels: dict[str, str | None]) -> None:
    assert _refusal(**labels) is None


def test_a_long_refused_value_is_shown_cut_short() -> None:
    refusal = _refusal(pod="X" * 10_000)
    assert refusal is not None
    assert len(refusal.detail) < 200
    assert "longer than 253 characters" in refusal.detail


def test_in_a_namespaced_install_other_namespaces_are_out_of_scope() -> None:
    config = settings.Settings.model_validate({"kubernetes": {"namespaces": ["shop", "billing"]}})
    assert _refusal(config, namespace="shop") is None
    refusal = _refusal(config, namespace="kube-system")
    assert refusal is not None
    assert refusal.reason is decisions.Reason.OUT_OF_SCOPE
    assert refusal.detail == (
        "namespace 'kube-system' is not one of kubernetes.namespaces (shop, billing): "
        "the service has no access there"
    )


def test_in_cluster_scope_every_valid_namespace_passes() -> None:
    assert _refusal(namespace="kube-system") is None
