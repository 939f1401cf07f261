"""rollout_restart's I/O part (`responder.engine.actions.rollout_restart`), over an in-memory API.

Aspects covered: the restartedAt stamp and the ledger entry are one PATCH under the planned resourceVersion,
so a workload changed since the read answers 409 (re-plan) and keeps its template.
"""

from __future__ import annotations

import pytest

from responder.engine.actions import rollout_restart
from responder.kube import errors
from responder.logic.actions import rollout_restart as pure
from tests.unit.engine import cluster


async def test_the_stamp_and_its_entry_are_one_write_under_the_planned_version() -> None:
    api = cluster.seeded()
    snapshot = cluster.snapshot_of(api)
    mutation = cluster.mutation_for(snapshot, "rollout_restart")
    kube = cluster.fakeapi.kube_on(api)

    await rollout_restart.carry_out(kube, snapshot=snapshot, mutation=mutation, dry_run=False)

    template = api.objects[cluster.DEPLOYMENT]["spec"]["template"]["metadata"]["annotations"]
    assert template[pure.RESTARTED_AT_ANNOTATION] == "2026-03-01T12:00:00Z"
    with pytest.raises(errors.KubeConflict):
        await rollout_restart.carry_out(kube, snapshot=snapshot, mutation=mutation, dry_run=False)
