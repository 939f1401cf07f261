"""The API client's contract with the layers above it (`responder.kube.client.Kube`), over an in-memory API.

Aspects covered:

* answers outside 2xx become the service's own errors: 404 not found, 409 conflict, 403 forbidden, 422
  invalid, a 429 on an eviction blocked by a PodDisruptionBudget, 5xx unavailable, each with the API's message;
* passing failures (5xx, 429 without a PDB) are retried up to `max_attempts`, final ones (4xx) are not;
* a dry run is `dryRun=All`; patches are strategic merge unless told otherwise; lists return their items;
* every request is counted by verb, status and resource.
"""

from __future__ import annotations

import pytest

from responder import metrics as metrics_mod
from responder.kube import client, errors
from tests.unit import fakeapi

POD = "/api/v1/namespaces/shop/pods/web-1"


@pytest.mark.parametrize(
    ("code", "error"),
    [
        pytest.param(404, errors.KubeNotFound, id="not-found"),
        pytest.param(409, errors.KubeConflict, id="conflict"),
        pytest.param(403, errors.KubeForbidden, id="forbidden"),
        pytest.param(422, errors.KubeInvalid, id="invalid"),
        pytest.param(401, errors.KubeUnauthorized, id="unauthorized"),
    ],
)
async def test_a_final_answer_becomes_the_services_own_error_with_the_apis_message(
    code: int, error: type[errors.KubeError]
) -> None:
    api = fakeapi.FakeApi()
    api.refuse("GET", POD, code, "the API server says no", times=5)
    kube = fakeapi.kube_on(api)

    with pytest.raises(error, match="the API server says no") as raised:
        await kube.get(POD)

    assert raised.value.status == code
    assert len(api.sent("GET")) == 1  # not retried


async def test_a_passing_failure_is_retried_and_then_answered() -> None:
    api = fakeapi.FakeApi()
    api.put_object(POD, {"metadata": {"name": "web-1"}})
    api.refuse("GET", POD, 503, "etcd is slow", times=2)
    kube = fakeapi.kube_on(api, max_attempts=3)

    body = await kube.get(POD)

    assert body["metadata"]["name"] == "web-1"
    assert len(api.sent("GET")) == 3


async def test_a_passing_failure_that_lasts_gives_up_after_max_attempts_as_unavailable() -> None:
    api = fakeapi.FakeApi()
    api.refuse("GET", POD, 503, "etcd is down", times=10)
    kube = fakeapi.kube_on(api, max_attempts=2)

    with pytest.raises(errors.KubeUnavailable, match="etcd is down"):
        await kube.get(POD)

    assert len(api.sent("GET")) == 2


async def test_an_eviction_refused_with_429_is_a_pod_disruption_budget_block_and_is_not_retried() -> None:
    api = fakeapi.FakeApi()
    api.refuse(
        "POST", f"{POD}/eviction", 429, "Cannot evict pod as it would violate the pod's disruption budget."
    )
    kube = fakeapi.kube_on(api, max_attempts=3)

    with pytest.raises(errors.KubePdbBlocked, match="disruption budget"):
        await kube.create(f"{POD}/eviction", {"kind": "Eviction"}, eviction=True)

    assert len(api.sent("POST")) == 1


async def test_a_dry_run_is_sent_as_dry_run_all_and_a_patch_as_strategic_merge() -> None:
    api = fakeapi.FakeApi()
    api.put_object(POD, {"metadata": {"name": "web-1"}, "spec": {"containers": [{"name": "app"}]}})
    kube = fakeapi.kube_on(api)

    await kube.patch(POD, {"metadata": {"labels": {"a": "b"}}}, dry_run=True)
    await kube.create("/api/v1/namespaces/shop/pods", {"metadata": {"name": "check"}}, dry_run=True)

    patch, create = api.requests
    assert patch.content_type == client.STRATEGIC_MERGE_PATCH and patch.dry_run
    assert create.dry_run
    assert "labels" not in api.objects[POD]["metadata"]  # nothing persisted
    assert "/api/v1/namespaces/shop/pods/check" not in api.objects


async def test_a_list_returns_its_items_and_every_request_is_counted_by_verb_and_status() -> None:
    api = fakeapi.FakeApi()
    api.put_object(POD, {"metadata": {"name": "web-1"}})
    api.put_object("/api/v1/namespaces/shop/pods/web-2", {"metadata": {"name": "web-2"}})
    metrics = metrics_mod.Metrics()
    kube = fakeapi.kube_on(api, metrics=metrics)

    items = await kube.list("/api/v1/namespaces/shop/pods")
    with pytest.raises(errors.KubeNotFound):
        await kube.get("/api/v1/namespaces/shop/pods/web-3")

    assert sorted(item["metadata"]["name"] for item in items) == ["web-1", "web-2"]
    assert (
        metrics.registry.get_sample_value(
            "oom_responder_kube_requests_total", {"verb": "list", "code": "200", "resource": "pods"}
        )
        == 1
    )
    assert (
        metrics.registry.get_sample_value(
            "oom_responder_kube_requests_total", {"verb": "get", "code": "404", "resource": "pods"}
        )
        == 1
    )
