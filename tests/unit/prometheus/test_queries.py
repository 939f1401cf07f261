"""Which PromQL the reader runs (`responder/prometheus/queries.py`).

Aspects covered: the pod-name regex per workload kind (replaced pods match, another workload sharing the
prefix does not, long names cut like generateName cuts them), refusing names Kubernetes would not accept,
filling the templates, and the window's step widened to stay under the points limit.
"""

from __future__ import annotations

import re

import pytest

from responder.models import settings
from responder.prometheus import queries


@pytest.mark.parametrize(
    ("kind", "name", "matches", "misses"),
    [
        pytest.param(
            "Deployment",
            "api",
            ["api-7d9f8b6c5d-x2x4q", "api-5d4c3b2a1-old01"],
            ["api-gateway-5f6d7c8b9-zzzzz", "api-0", "api"],
            id="deployment",
        ),
        pytest.param("StatefulSet", "db", ["db-0", "db-12"], ["db-x2x4q", "db-main-0"], id="statefulset"),
        pytest.param(
            "DaemonSet", "agent", ["agent-x2x4q"], ["agent-7d9f8b6c5d-x2x4q", "agent-0x"], id="daemonset"
        ),
        pytest.param("Pod", "solo", ["solo"], ["solo-1"], id="bare-pod"),
    ],
)
def test_pod_regex_matches_the_workloads_pods_only(
    kind: str, name: str, matches: list[str], misses: list[str]
) -> None:
    pattern = re.compile(queries.pod_regex(kind=kind, name=name))
    assert all(pattern.fullmatch(p) for p in matches)
    assert not any(pattern.fullmatch(p) for p in misses)


def test_a_long_deployment_name_matches_the_cut_pod_names() -> None:
    name = "a-very-long-deployment-name-that-kubernetes-cuts-in-pod-names"
    pod = name[:57] + "-x2x4q"  # generateName keeps 58 characters of "<replicaset>-"
    assert re.fullmatch(queries.pod_regex(kind="Deployment", name=name), pod)


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        pytest.param("Deployment", 'api"}) or vector(1', id="promql-injection"),
        pytest.param("Deployment", "API", id="upper-case"),
        pytest.param("CronJob", "api", id="unknown-kind"),
    ],
)
def test_refuses_what_kubernetes_would_not_name(kind: str, name: str) -> None:
    with pytest.raises(queries.BadName):
        queries.pod_regex(kind=kind, name=name)


def test_templates_get_the_namespace_pods_and_container() -> None:
    template = settings.PrometheusQueries().working_set
    rendered = queries.render(
        template, namespace="shop", pods=queries.pod_regex(kind="StatefulSet", name="db"), container="app"
    )
    assert 'namespace="shop"' in rendered
    assert 'pod=~"db-[0-9]+"' in rendered
    assert 'container=~"app"' in rendered
    everything = queries.render(template, namespace="shop", pods="x", container=None)
    assert 'container=~".+"' in everything


def test_a_regex_escape_is_doubled_inside_the_promql_string() -> None:
    rendered = queries.render(
        '{pod=~"$pods"}', namespace="a", pods=queries.pod_regex(kind="Pod", name="a.b"), container=None
    )
    assert rendered == '{pod=~"a\\\\.b"}'


def test_bad_namespace_or_container_is_refused() -> None:
    with pytest.raises(queries.BadName):
        queries.render("$namespace", namespace='x"}', pods="p", container=None)
    with pytest.raises(queries.BadName):
        queries.render("$container", namespace="x", pods="p", container="a|b")


def test_window_widens_the_step_to_stay_under_max_points() -> None:
    week = settings.PrometheusSettings(lookback_seconds=7 * 86400, step_seconds=30, max_points=5000)
    w = queries.window(week, now=1_700_000_123.0)
    assert (w.end - w.start) / w.step + 1 <= 5000
    assert w.end <= 1_700_000_123.0
    day = queries.window(settings.PrometheusSettings(), now=1_700_000_123.0)
    assert day.step == 60
    assert day.end - day.start == 86400
