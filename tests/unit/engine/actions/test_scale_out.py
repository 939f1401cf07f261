"""scale_out's I/O part (`responder.engine.actions.scale_out`), over an in-memory API.

Aspects covered:

* without an HPA, spec.replicas and the ledger entry are one PATCH on the workload;
* with an HPA, the ledger entry is written on the workload first, then the HPA's minReplicas (no
  precondition); when the HPA write fails, the entry already claiming the action is marked failed and the
  error goes up; in a dry run nothing is marked.
"""

from __future__ import annotations

import pytest

from responder.engine.actions import scale_out
from responder.kube import errors
from responder.models import decisions, ledgers
from tests.unit.engine import cluster

HPA = "/apis/autoscaling/v2/namespaces/shop/horizontalpodautoscalers/web"


def _hpa(api: cluster.fakeapi.FakeApi) -> dict[str, object]:
    return api.put_object(HPA, {"metadata": {"name": "web"}, "spec": {"minReplicas": 2, "maxReplicas": 6}})


async def test_without_an_hpa_the_replicas_and_the_ledger_are_one_write() -> None:
    api = cluster.seeded()
    snapshot = cluster.snapshot_of(api)
    mutation = cluster.mutation_for(snapshot, "scale_out")

    await scale_out.carry_out(
        cluster.fakeapi.kube_on(api), snapshot=snapshot, mutation=mutation, dry_run=False
    )

    [patch] = api.requests
    assert patch.body["spec"] == {"replicas": 3}
    assert ledgers.ANNOTATION in patch.body["metadata"]["annotations"]


async def test_with_an_hpa_the_ledger_goes_first_and_then_the_hpa_floor() -> None:
    api = cluster.seeded()
    hpa = _hpa(api)
    snapshot = cluster.snapshot_of(api, hpa=hpa)
    mutation = cluster.mutation_for(snapshot, "scale_out")

    await scale_out.carry_out(
        cluster.fakeapi.kube_on(api), snapshot=snapshot, mutation=mutation, dry_run=False
    )

    workload, floor = api.requests
    assert (workload.path, floor.path) == (cluster.DEPLOYMENT, HPA)
    assert "spec" not in workload.body
    assert floor.body == {"spec": {"minReplicas": 3}}
    assert api.objects[HPA]["spec"]["minReplicas"] == 3


async def test_a_failed_hpa_write_marks_the_claiming_entry_failed_and_goes_up() -> None:
    api = cluster.seeded()
    snapshot = cluster.snapshot_of(api, hpa=_hpa(api))
    mutation = cluster.mutation_for(snapshot, "scale_out")
    api.refuse("PATCH", HPA, 403, "horizontalpodautoscalers is forbidden")

    with pytest.raises(errors.KubeForbidden):
        await scale_out.carry_out(
            cluster.fakeapi.kube_on(api), snapshot=snapshot, mutation=mutation, dry_run=False
        )

    raw = api.objects[cluster.DEPLOYMENT]["metadata"]["annotations"][ledgers.ANNOTATION]
    [entry] = ledgers.load(raw)
    assert entry.result is decisions.Outcome.FAILED


async def test_a_failed_hpa_dry_run_marks_nothing() -> None:
    api = cluster.seeded()
    snapshot = cluster.snapshot_of(api, hpa=_hpa(api))
    mutation = cluster.mutation_for(snapshot, "scale_out")
    api.refuse("PATCH", HPA, 403, "horizontalpodautoscalers is forbidden")

    with pytest.raises(errors.KubeForbidden):
        await scale_out.carry_out(
            cluster.fakeapi.kube_on(api), snapshot=snapshot, mutation=mutation, dry_run=True
        )

    assert ledgers.ANNOTATION not in api.objects[cluster.DEPLOYMENT]["metadata"]["annotations"]
    assert all(request.dry_run for request in api.sent("PATCH"))
