"""The API client's request accounting.

Covers: the `resource` label of `oom_responder_kube_requests_total` is the plural resource (with its
subresource) a path names, core and grouped APIs, namespaced and cluster-wide, never a namespace or object
name; paths outside the resource APIs are named by their first segment.
"""

from __future__ import annotations

import pytest

from responder.kube import client


@pytest.mark.parametrize(
    ("path", "resource"),
    [
        pytest.param("/api/v1/namespaces/shop/pods/api-1", "pods", id="core-object"),
        pytest.param("/api/v1/namespaces/shop/pods", "pods", id="core-list"),
        pytest.param("/api/v1/namespaces/shop/pods/api-1/eviction", "pods/eviction", id="subresource"),
        pytest.param("/api/v1/namespaces/shop", "namespaces", id="namespace-object"),
        pytest.param("/api/v1/namespaces", "namespaces", id="namespace-list"),
        pytest.param("/api/v1/nodes/n1", "nodes", id="cluster-scoped"),
        pytest.param("/apis/apps/v1/namespaces/shop/deployments/api", "deployments", id="grouped-object"),
        pytest.param("/apis/apps/v1/namespaces/shop/deployments/api/scale", "deployments/scale", id="scale"),
        pytest.param("/apis/apps/v1/deployments", "deployments", id="grouped-all-namespaces"),
        pytest.param(
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", "selfsubjectaccessreviews", id="review"
        ),
        pytest.param("/apis/apps/v1/namespaces/shop/deployments?watch=1", "deployments", id="query"),
        pytest.param("/version", "version", id="version"),
        pytest.param("/apis/apps/v1", "discovery", id="discovery"),
    ],
)
def test_names_the_resource_of_a_path(path: str, resource: str) -> None:
    assert client.resource_of(path) == resource
