"""evict_pod's I/O part (`responder.engine.actions.evict_pod`), over an in-memory API.

Aspects covered:

* the pod is evicted first, then the entry is appended to a fresh read of the workload (not under the
  planned resourceVersion, which the eviction itself makes stale);
* a replica that finds the occurrence already recorded adds no second entry;
* a PodDisruptionBudget's refusal leaves no ledger entry behind (no cooldown for an eviction not done).
"""

from __future__ import annotations

import pytest

from responder.engine.actions import evict_pod
from responder.kube import errors
from responder.models import ledgers
from tests.unit.engine import cluster


def _entries(api: cluster.fakeapi.FakeApi) -> list[ledgers.LedgerEntry]:
    return ledgers.load(api.objects[cluster.DEPLOYMENT]["metadata"]["annotations"].get(ledgers.ANNOTATION))


async def test_the_pod_is_evicted_then_recorded_on_a_fresh_read() -> None:
    api = cluster.seeded()
    snapshot = cluster.snapshot_of(api)
    mutation = cluster.mutation_for(snapshot, "evict_pod")
    api.put_object(cluster.DEPLOYMENT, api.objects[cluster.DEPLOYMENT])  # a controller wrote the status since

    await evict_pod.carry_out(
        cluster.fakeapi.kube_on(api), snapshot=snapshot, mutation=mutation, dry_run=False
    )

    assert (api.requests[0].method, api.requests[0].path) == ("POST", f"{cluster.POD}/eviction")
    assert cluster.POD not in api.objects
    assert [e.action.value for e in _entries(api)] == ["evict_pod"]


async def test_an_occurrence_already_recorded_gets_no_second_entry() -> None:
    api = cluster.seeded()
    snapshot = cluster.snapshot_of(api)
    mutation = cluster.mutation_for(snapshot, "evict_pod")
    kube = cluster.fakeapi.kube_on(api)
    await evict_pod.carry_out(kube, snapshot=snapshot, mutation=mutation, dry_run=False)
    api.put_object(cluster.POD, cluster.oom_killed_pod())

    await evict_pod.carry_out(kube, snapshot=snapshot, mutation=mutation, dry_run=False)

    assert len(_entries(api)) == 1


async def test_a_pdb_refusal_leaves_no_entry() -> None:
    api = cluster.seeded()
    snapshot = cluster.snapshot_of(api)
    mutation = cluster.mutation_for(snapshot, "evict_pod")
    api.refuse(
        "POST",
        f"{cluster.POD}/eviction",
        429,
        "Cannot evict pod as it would violate the pod's disruption budget.",
    )

    with pytest.raises(errors.KubePdbBlocked):
        await evict_pod.carry_out(
            cluster.fakeapi.kube_on(api), snapshot=snapshot, mutation=mutation, dry_run=False
        )

    assert _entries(api) == []
