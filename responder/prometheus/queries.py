"""Which PromQL to run for a workload: its pods' names as a regular expression, the window and the step.

Pure: builds strings, reads nothing. Names come from alerts and the command line, so they are checked
against Kubernetes' naming rules before they go into a query (nothing can close a label matcher early).
"""

from __future__ import annotations

import enum
import math
import re
import string

from responder.models import settings

__all__ = ["QueryName", "Window", "pod_regex", "render", "window"]

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_CONTAINER = _DNS_LABEL

# Pod names Kubernetes generates, by owner kind. A Deployment's pods are <name>-<pod-template-hash>-<5>,
# a ReplicaSet's, a DaemonSet's and a Job's <name>-<5>, a StatefulSet's <name>-<ordinal>. Anchored (Prometheus
# anchors =~), so "api" never matches "api-gateway-…": another workload's pods are never read.
_SUFFIX = {
    "Deployment": r"-[a-z0-9]{1,10}-[a-z0-9]{5}",
    "ReplicaSet": r"-[a-z0-9]{5}",
    "DaemonSet": r"-[a-z0-9]{5}",
    "Job": r"-[a-z0-9]{5}",
    "StatefulSet": r"-[0-9]+",
    "Pod": "",
}
_GENERATED_NAME_MAX = 63 - 5
"""generateName keeps at most 58 characters of its prefix before the random suffix."""


class QueryName(enum.StrEnum):
    WORKING_SET = "working_set"
    RSS = "rss"
    LIMIT = "limit"
    RESTARTS = "restarts"


class BadName(ValueError):
    """A namespace, workload or container name Kubernetes would not accept."""


def pod_regex(*, kind: str, name: str) -> str:
    """A regular expression matching every pod the workload ever had (RE2 syntax, as Prometheus uses)."""
    if kind not in _SUFFIX:
        raise BadName(f"kind must be one of {', '.join(_SUFFIX)}, not {kind!r}")
    if not _DNS_SUBDOMAIN.match(name) or len(name) > 253:
        raise BadName(f"{name!r} is not a Kubernetes object name")
    suffix = _SUFFIX[kind]
    if kind == "Deployment" and len(name) + 12 > _GENERATED_NAME_MAX:
        # The ReplicaSet's name (and then the pod's) is cut at 58 characters: match the cut prefix.
        return re.escape(name[: _GENERATED_NAME_MAX - 1]) + r"[-a-z0-9]*-[a-z0-9]{5}"
    if kind in ("ReplicaSet", "DaemonSet", "Job") and len(name) + 1 > _GENERATED_NAME_MAX:
        return re.escape(name[:_GENERATED_NAME_MAX]) + r"[-a-z0-9]*"
    return re.escape(name) + suffix


def render(template: str, *, namespace: str, pods: str, container: str | None) -> str:
    """Fill `$namespace`, `$pods` and `$container` into a query template."""
    if not _DNS_LABEL.match(namespace):
        raise BadName(f"{namespace!r} is not a namespace name")
    if container is not None and not _CONTAINER.match(container):
        raise BadName(f"{container!r} is not a container name")
    # Inside a PromQL string, a regex's backslashes must be doubled.
    return string.Template(template).safe_substitute(
        namespace=namespace,
        pods=pods.replace("\\", "\\\\"),
        container=re.escape(container).replace("\\", "\\\\") if container else ".+",
    )


class Window:
    """A query_range window: start and end (Unix seconds) and the step (seconds)."""

    __slots__ = ("end", "start", "step")

    def __init__(self, *, start: float, end: float, step: float) -> None:
        self.start = start
        self.end = end
        self.step = step


def window(config: settings.PrometheusSettings, *, now: float) -> Window:
    """The configured lookback ending now, at a step that keeps each series under max_points."""
    step = max(config.step_seconds, math.ceil(config.lookback_seconds / (config.max_points - 1)))
    end = math.floor(now / step) * step
    return Window(start=end - config.lookback_seconds, end=end, step=step)
