"""Mapping API answers to the service's errors, and which of them are retried.

Aspects covered: status → error class with the API server's message; a PDB 429 on an eviction is not retried
while an overload 429 is, honouring Retry-After; 5xx retried up to max_attempts; 403/404/409/422 never retried.
Time is injected: the retry sleeps are recorded, never slept.
"""

from __future__ import annotations

import json

import pytest

from responder.kube import errors, retrying


def status_body(message: str, reason: str = "", causes: list[dict[str, str]] | None = None) -> str:
    return json.dumps(
        {"kind": "Status", "message": message, "reason": reason, "details": {"causes": causes or []}}
    )


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        pytest.param(404, errors.KubeNotFound, id="404"),
        pytest.param(409, errors.KubeConflict, id="409"),
        pytest.param(403, errors.KubeForbidden, id="403"),
        pytest.param(422, errors.KubeInvalid, id="422"),
        pytest.param(429, errors.KubeTooManyRequests, id="429"),
        pytest.param(503, errors.KubeUnavailable, id="503"),
    ],
)
def test_maps_statuses_to_errors_with_the_server_message(status: int, cls: type[errors.KubeError]) -> None:
    error = errors.from_status(status=status, body=status_body("exceeded quota: q"))
    assert type(error) is cls
    assert error.message == "exceeded quota: q" and error.status == status


def test_a_pdb_refusal_is_not_retried_but_load_shedding_is() -> None:
    pdb = errors.from_status(
        status=429, body=status_body("Cannot evict pod", causes=[{"reason": "DisruptionBudget"}])
    )
    shed = errors.from_status(status=429, body=status_body("too many"), headers={"Retry-After": "3"})
    assert isinstance(pdb, errors.KubePdbBlocked) and not pdb.retriable
    assert shed.retriable and shed.retry_after_seconds == 3.0


class Flaky:
    def __init__(self, *failures: errors.KubeError) -> None:
        self.failures = list(failures)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


async def test_retries_passing_failures_honouring_retry_after() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    call = Flaky(
        errors.KubeUnavailable("down", status=503),
        errors.KubeTooManyRequests("busy", status=429, retry_after_seconds=2.0),
    )
    assert await retrying.retrying(call, max_attempts=5, sleep=sleep) == "ok"
    assert call.calls == 3
    assert slept[1] == 2.0 and 0 <= slept[0] <= 10


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(errors.KubeForbidden("no", status=403), id="403"),
        pytest.param(errors.KubeNotFound("no", status=404), id="404"),
        pytest.param(errors.KubeConflict("no", status=409), id="409"),
        pytest.param(errors.KubeInvalid("no", status=422), id="422"),
        pytest.param(errors.KubePdbBlocked("no", status=429), id="pdb"),
    ],
)
async def test_final_answers_are_not_retried(error: errors.KubeError) -> None:
    async def sleep(seconds: float) -> None:
        raise AssertionError("must not sleep")

    call = Flaky(error)
    with pytest.raises(type(error)):
        await retrying.retrying(call, max_attempts=5, sleep=sleep)
    assert call.calls == 1


async def test_gives_up_after_max_attempts_with_the_last_error() -> None:
    async def sleep(seconds: float) -> None:
        return None

    call = Flaky(*[errors.KubeUnavailable(f"down {n}", status=500) for n in range(5)])
    with pytest.raises(errors.KubeUnavailable, match="down 2"):
        await retrying.retrying(call, max_attempts=3, sleep=sleep)
    assert call.calls == 3
