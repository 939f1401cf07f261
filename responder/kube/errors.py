"""The service's own Kubernetes API errors, mapped from the API server's answers.

Stage: kube edge. The API server's error answers and aiohttp's errors stop here: everything above
`responder.kube` sees these classes (raised `from` the original exception when there is one). The API
server's own message (from its `Status` body) is kept, truncated, because it is what an operator needs
("exceeded quota: ...").
`reason_for` names each for the operator (`decisions.Reason`). This module must not retry, log or decide
anything.
"""

from __future__ import annotations

import json
import re
from typing import Any

from responder.models import decisions

__all__ = [
    "KubeConflict",
    "KubeError",
    "KubeForbidden",
    "KubeInvalid",
    "KubeNotFound",
    "KubePdbBlocked",
    "KubeTooManyRequests",
    "KubeUnauthorized",
    "KubeUnavailable",
    "from_status",
    "reason_for",
]

MAX_MESSAGE_CHARS = 500
"""API messages are truncated to this: a 422 on a big object can echo kilobytes."""


class KubeError(Exception):
    """An API call failed. `status` is the HTTP status (0 when there was no answer)."""

    def __init__(
        self, message: str, *, status: int = 0, reason: str = "", retry_after_seconds: float | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.reason = reason
        self.retry_after_seconds = retry_after_seconds

    @property
    def retriable(self) -> bool:
        return False


class KubeNotFound(KubeError):
    """404: the object (or the API, e.g. a CRD that is not installed) does not exist."""


class KubeConflict(KubeError):
    """409: someone else wrote first (stale resourceVersion), or the object already exists: re-read, re-plan."""


class KubeUnauthorized(KubeError):
    """401: the credentials are not accepted."""


class KubeForbidden(KubeError):
    """403: RBAC does not allow it (or an admission plugin such as ResourceQuota refused it)."""


class KubeInvalid(KubeError):
    """422 or 400: the API server refused the body (validation, LimitRange, immutable field)."""


class KubeTooManyRequests(KubeError):
    """429: the API server is shedding load (priority and fairness); retried after Retry-After."""

    @property
    def retriable(self) -> bool:
        return True


class KubePdbBlocked(KubeTooManyRequests):
    """429 on an eviction: a PodDisruptionBudget does not allow it now. Not retried in place: it is reported,
    and a later repeat of the alert tries again within the guardrails."""

    @property
    def retriable(self) -> bool:
        return False


class KubeUnavailable(KubeError):
    """5xx, a timeout or a dropped connection: retried with backoff."""

    @property
    def retriable(self) -> bool:
        return True


def _parse_body(body: Any) -> dict[str, Any]:
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str) and body:
        try:
            parsed = json.loads(body)
        except ValueError:
            return {"message": body}
        return parsed if isinstance(parsed, dict) else {}
    return {}


def _retry_after(headers: Any) -> float | None:
    if not headers:
        return None
    try:
        raw = headers.get("Retry-After")
    except AttributeError:
        return None
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None


def from_status(
    *, status: int, body: Any, headers: Any = None, reason: str = "", eviction: bool = False
) -> KubeError:
    """The error for an HTTP answer outside 2xx, with the API server's message."""
    parsed = _parse_body(body)
    message = str(parsed.get("message") or reason or f"HTTP {status}")[:MAX_MESSAGE_CHARS]
    api_reason = str(parsed.get("reason") or reason or "")
    retry_after = _retry_after(headers)
    kwargs: dict[str, Any] = {"status": status, "reason": api_reason, "retry_after_seconds": retry_after}
    if status == 404:
        return KubeNotFound(message, **kwargs)
    if status == 409:
        return KubeConflict(message, **kwargs)
    if status == 401:
        return KubeUnauthorized(message, **kwargs)
    if status == 403:
        return KubeForbidden(message, **kwargs)
    if status in (400, 422):
        return KubeInvalid(message, **kwargs)
    if status == 429:
        causes = (parsed.get("details") or {}).get("causes") or []
        if eviction or any(cause.get("reason") == "DisruptionBudget" for cause in causes):
            return KubePdbBlocked(message, **kwargs)
        return KubeTooManyRequests(message, **kwargs)
    if status >= 500 or status == 0:
        return KubeUnavailable(message, **kwargs)
    return KubeError(message, **kwargs)


# RBAC's 403 names the identity and what it may not do: `pods is forbidden: User "system:serviceaccount:x:y"
# cannot create resource "pods" in API group "" in the namespace "shop"`. ResourceQuota and LimitRange refuse with
# 403 too, on a request the identity may make: `exceeded quota: ...`, `maximum memory usage per Container ...`.
_RBAC = re.compile(r'\bUser "[^"]*" cannot \S+ resource\b')


def _forbidden_reason(message: str) -> decisions.Reason:
    if _RBAC.search(message):
        return decisions.Reason.FORBIDDEN
    if "quota" in message.lower():
        return decisions.Reason.QUOTA_REFUSED
    # Admission's other refusals on a pod's resources come from the LimitRanger.
    return decisions.Reason.LIMIT_RANGE_REFUSED


def reason_for(error: KubeError) -> decisions.Reason:
    """The reason an operator reads for a refused request: the same word in the notice, Event and metric."""
    if isinstance(error, KubePdbBlocked):
        return decisions.Reason.PDB_BLOCKED
    if isinstance(error, KubeForbidden):
        return _forbidden_reason(error.message)
    if isinstance(error, KubeInvalid):
        return decisions.Reason.INVALID
    if isinstance(error, KubeConflict):
        return decisions.Reason.CONFLICT
    if isinstance(error, KubeNotFound):
        return decisions.Reason.TARGET_NOT_FOUND
    return decisions.Reason.API_ERROR
