"""raise_memory's I/O part (`responder.engine.actions.raise_memory`), over an in-memory API.

Aspects covered:

* the precheck creates the new pod as a server-side dry run, with the new limit, and names a quota or a
  LimitRange refusal (403) `quota_refused`, a template the API refuses (422) `invalid`;
* the write is the planned PATCH; the in-place resize is skipped for a gone pod and reports a refusal in a
  line rather than failing the raise;
* after a failed rollout the previous limit is written back with the failed result, unless the limit was
  changed since; without `revert_on_failure` nothing is done here.
"""

from __future__ import annotations

from typing import Any

from responder.engine.actions import raise_memory
from responder.models import actions, decisions, ledgers
from tests.unit.engine import cluster

PODS = "/api/v1/namespaces/shop/pods"


def _limit(api: cluster.fakeapi.FakeApi) -> str:
    [container] = api.objects[cluster.DEPLOYMENT]["spec"]["template"]["spec"]["containers"]
    return str(container["resources"]["limits"]["memory"])


async def test_the_precheck_admits_the_new_pod_as_a_dry_run_with_the_new_limit() -> None:
    api = cluster.seeded()
    snapshot = cluster.snapshot_of(api)
    mutation = cluster.mutation_for(snapshot, "raise_memory")

    refusal = await raise_memory.precheck(cluster.fakeapi.kube_on(api), snapshot=snapshot, mutation=mutation)

    assert refusal is None
    [create] = api.sent("POST", PODS)
    assert create.dry_run
    assert create.body["spec"]["containers"][0]["resources"]["limits"]["memory"] == "228Mi"


async def test_the_precheck_names_quota_and_invalid_refusals() -> None:
    api = cluster.seeded()
    snapshot = cluster.snapshot_of(api)
    mutation = cluster.mutation_for(snapshot, "raise_memory")
    kube = cluster.fakeapi.kube_on(api)

    api.refuse("POST", PODS, 403, "exceeded quota: compute, requested: limits.memory=228Mi")
    quota = await raise_memory.precheck(kube, snapshot=snapshot, mutation=mutation)
    api.refuse("POST", PODS, 422, "spec.containers[0].resources: Invalid value")
    invalid = await raise_memory.precheck(kube, snapshot=snapshot, mutation=mutation)

    assert quota is not None and (quota.reason, quota.detail) == (
        decisions.Reason.QUOTA_REFUSED,
        "exceeded quota: compute, requested: limits.memory=228Mi",
    )
    assert invalid is not None and invalid.reason is decisions.Reason.INVALID


async def test_the_write_is_the_planned_patch_and_a_refused_resize_is_a_line_not_a_failure() -> None:
    api = cluster.seeded()
    snapshot = cluster.snapshot_of(api)
    mutation = cluster.mutation_for(snapshot, "raise_memory")
    kube = cluster.fakeapi.kube_on(api)

    await raise_memory.carry_out(kube, snapshot=snapshot, mutation=mutation, dry_run=False)
    api.refuse("PATCH", f"{cluster.POD}/resize", 404, "the server could not find the requested resource")
    line = await raise_memory.resize_in_place(
        kube,
        snapshot=snapshot,
        mutation=mutation,
        options=actions.RaiseMemory(resize_in_place=True),
        dry_run=False,
    )
    off = await raise_memory.resize_in_place(
        kube, snapshot=snapshot, mutation=mutation, options=actions.RaiseMemory(), dry_run=False
    )

    assert api.sent("PATCH", cluster.DEPLOYMENT)[0].body == mutation.workload_patch
    assert _limit(api) == "228Mi"
    assert (
        line == "in-place resize of web-7d9f-abcde refused: the server could not find the requested resource"
    )
    assert off == ""


async def test_a_failed_rollout_is_reverted_only_while_the_raised_limit_is_there() -> None:
    api = cluster.seeded()
    snapshot = cluster.snapshot_of(api)
    mutation = cluster.mutation_for(snapshot, "raise_memory")
    kube = cluster.fakeapi.kube_on(api)
    await raise_memory.carry_out(kube, snapshot=snapshot, mutation=mutation, dry_run=False)
    options = actions.RaiseMemory(revert_on_failure=True)
    written: list[Any] = []

    async def record(extra_for: Any) -> bool:
        workload = api.objects[cluster.DEPLOYMENT]
        extra = extra_for(workload) if extra_for else None
        written.append(extra)
        if extra:
            api.objects[cluster.DEPLOYMENT] = cluster.fakeapi._merge(workload, extra)
        return True

    said = await raise_memory.on_failed_rollout(
        target=snapshot.target, mutation=mutation, options=options, record=record
    )
    assert said == " Reverted to 128Mi."
    assert _limit(api) == "128Mi"

    # Someone set 512Mi meanwhile: the revert must not undo it.
    api.objects[cluster.DEPLOYMENT]["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"][
        "memory"
    ] = "512Mi"
    said = await raise_memory.on_failed_rollout(
        target=snapshot.target, mutation=mutation, options=options, record=record
    )
    assert said == " Not reverted: the limit was changed since the raise."
    assert _limit(api) == "512Mi"
    assert (
        await raise_memory.on_failed_rollout(
            target=snapshot.target, mutation=mutation, options=actions.RaiseMemory(), record=record
        )
        is None
    )
    assert ledgers.ANNOTATION in api.objects[cluster.DEPLOYMENT]["metadata"]["annotations"]
