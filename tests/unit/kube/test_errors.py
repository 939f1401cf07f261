"""Naming a refused request for the operator (`responder.kube.errors.reason_for`).

Aspects covered: a 403 is RBAC (`forbidden`: the service's identity may not make the request), a ResourceQuota
(`quota_refused`) or a LimitRange (`limit_range_refused`), told apart by the API server's own message; the
other statuses keep their reasons.
"""

from __future__ import annotations

import pytest

from responder.kube import errors
from responder.models import decisions

Reason = decisions.Reason


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        pytest.param(
            'pods is forbidden: User "system:serviceaccount:ops:responder" cannot create resource "pods" in '
            'API group "" in the namespace "shop"',
            Reason.FORBIDDEN,
            id="rbac",
        ),
        pytest.param(
            'pods "web-check-x" is forbidden: exceeded quota: compute, requested: limits.memory=228Mi, '
            "used: limits.memory=128Mi, limited: limits.memory=300Mi",
            Reason.QUOTA_REFUSED,
            id="quota",
        ),
        pytest.param(
            'pods "web-check-x" is forbidden: maximum memory usage per Container is 200Mi, but limit is 228Mi',
            Reason.LIMIT_RANGE_REFUSED,
            id="limit-range",
        ),
    ],
)
def test_a_403_is_told_as_rbac_quota_or_limit_range(message: str, reason: decisions.Reason) -> None:
    assert errors.reason_for(errors.KubeForbidden(message, status=403)) is reason


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        pytest.param(errors.KubePdbBlocked("budget", status=429), Reason.PDB_BLOCKED, id="pdb"),
        pytest.param(errors.KubeInvalid("bad", status=422), Reason.INVALID, id="invalid"),
        pytest.param(errors.KubeConflict("changed", status=409), Reason.CONFLICT, id="conflict"),
        pytest.param(errors.KubeNotFound("gone", status=404), Reason.TARGET_NOT_FOUND, id="gone"),
        pytest.param(errors.KubeUnavailable("down", status=503), Reason.API_ERROR, id="unavailable"),
    ],
)
def test_other_refusals_keep_their_reasons(error: errors.KubeError, reason: decisions.Reason) -> None:
    assert errors.reason_for(error) is reason
