"""The chart's RBAC against the service's own list of what it needs (`responder.kube.permissions`).

Aspects covered:
* every permission any playbook needs is granted by the chart, for the default values and with in-place
  resize on / VPA checks off;
* the chart grants nothing beyond that list except SelfSubjectAccessReviews, which `doctor` uses to check the
  list itself (and so cannot be on it); `patch` on Jobs is on the list (an eviction of a Job's pod writes its
  ledger entry on the Job);
* the state ConfigMap's and the follow-up Leases' verbs are granted only in the service's own namespace.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from responder.kube import permissions
from responder.models import settings
from tests.deploy import tooling

Key = tuple[str, str, str, str, bool]

EXTRAS: set[Key] = {
    ("authorization.k8s.io", "selfsubjectaccessreviews", "", "create", False),
}


def _every_action(*, check_vpa: bool, resize_in_place: bool, heap_dump: bool = False) -> settings.Settings:
    actions: list[Any] = [
        {"raise_memory": {"check_vpa": check_vpa, "resize_in_place": resize_in_place}},
        "scale_out",
        "evict_pod",
        "rollout_restart",
        "capture_diagnostics",
        "heap_dump",
        "escalate",
        "scheduled_restart",
    ]
    return settings.Settings.model_validate(
        {
            "playbooks": [{"name": "everything", "alerts": ["oom_killed"], "actions": actions}],
            "diagnostics": {"heap_dump": {"enabled": heap_dump}},
        }
    )


def _granted(documents: list[dict[str, Any]], own_namespace: str) -> set[Key]:
    granted: set[Key] = set()
    for document in documents:
        if document["kind"] not in ("Role", "ClusterRole"):
            continue
        own = document["kind"] == "Role" and document["metadata"]["namespace"] == own_namespace
        own = own and document["metadata"]["name"].endswith(("-state", "-follow-ups"))
        for rule in document["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    name, _, subresource = resource.partition("/")
                    granted.update((group, name, subresource, verb, own) for verb in rule["verbs"])
    return granted


@pytest.mark.parametrize(
    ("values", "check_vpa", "resize_in_place", "heap_dump"),
    [
        pytest.param({}, True, False, False, id="default-values"),
        pytest.param(
            {"rbac": {"podResize": True, "verticalPodAutoscalers": False}},
            False,
            True,
            False,
            id="resize-no-vpa",
        ),
        pytest.param({"diagnostics": {"heapDump": {"enabled": True}}}, True, False, True, id="heap-dumps"),
    ],
)
def test_chart_grants_what_the_code_needs_and_no_more(
    helm: Path,
    tmp_path: Path,
    *,
    values: dict[str, Any],
    check_vpa: bool,
    resize_in_place: bool,
    heap_dump: bool,
) -> None:
    if not check_vpa:
        values = {**values, "config": _every_action(check_vpa=False, resize_in_place=resize_in_place).model_dump(
            mode="json", include={"playbooks"}, exclude_none=True)}  # fmt: skip
    documents = tooling.render_documents(helm, values=values, values_dir=tmp_path, namespace="ops")
    needed = {
        (p.group, p.resource, p.subresource, p.verb, p.own_namespace)
        for p in permissions.needed(
            _every_action(check_vpa=check_vpa, resize_in_place=resize_in_place, heap_dump=heap_dump)
        )
    }
    granted = _granted(documents, "ops")

    assert needed - granted == set(), "needed but not granted"
    assert granted - needed == EXTRAS, "granted beyond what the code needs"


@pytest.mark.parametrize("enabled", [pytest.param(False, id="off-by-default"), pytest.param(True, id="on")])
def test_the_heap_dump_value_grants_exec_and_turns_the_action_on_together(
    helm: Path, tmp_path: Path, enabled: bool
) -> None:
    values: dict[str, Any] = {"diagnostics": {"heapDump": {"enabled": True}}} if enabled else {}
    documents = tooling.render_documents(helm, values=values, values_dir=tmp_path, namespace="ops")
    granted = _granted(documents, "ops")
    exec_verbs = {verb for group, resource, sub, verb, _ in granted if (resource, sub) == ("pods", "exec")}
    assert exec_verbs == ({"get", "create"} if enabled else set())
    assert ("", "pods", "log", "get", False) in granted
    [configmap] = [d for d in documents if d["kind"] == "ConfigMap" and "config.yaml" in d.get("data", {})]
    rendered = settings.Settings.model_validate(yaml.safe_load(configmap["data"]["config.yaml"]))
    assert rendered.diagnostics.heap_dump.enabled is enabled
