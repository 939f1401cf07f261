"""The configuration of the monitoring stack the service talks to: Prometheus (memory history) and
Alertmanager (silences).

Data only, part of `responder.models.settings` (which re-exports every name here): frozen models that forbid
unknown keys, each field with its docstring; `config/responder.yaml` documents the same keys.
"""

from __future__ import annotations

import re
from typing import Annotated

import pydantic
from pydantic import Field

from responder.models import schemas

__all__ = ["AlertmanagerSettings", "PrometheusQueries", "PrometheusSettings"]


def _http_url(value: str | None) -> str | None:
    if value is not None and not re.match(r"^https?://[^/\s]+", value):
        raise ValueError("must be an http:// or https:// URL")
    return value.rstrip("/") if value else value


HttpUrl = Annotated[str | None, pydantic.AfterValidator(_http_url)]
"""An http:// or https:// base URL, kept without its trailing slash; None: not configured."""


class AlertmanagerSettings(schemas.Frozen):
    """The Alertmanager API (v2) the service creates silences in while a mitigation is under way."""

    url: HttpUrl = None
    """Base URL, e.g. http://alertmanager-operated.monitoring:9093; null: no silences (only a silence link)."""
    silences: bool = True
    """Create a silence for the workload's alert after a mitigation, for the action's cooldown."""
    bearer_token_file: str | None = None
    """File holding a bearer token for the Alertmanager API (e.g. behind an auth proxy)."""
    bearer_token_env: str | None = "OOM_RESPONDER_ALERTMANAGER_TOKEN"
    """Environment variable holding the bearer token, used when no file is set."""
    basic_username: str | None = None
    """User name for basic auth (used instead of a bearer token when set)."""
    basic_password_file: str | None = None
    """File holding the basic-auth password."""
    basic_password_env: str | None = "OOM_RESPONDER_ALERTMANAGER_PASSWORD"
    """Environment variable holding the basic-auth password, used when no file is set."""
    timeout_seconds: float = Field(5.0, gt=0)
    """Timeout of one Alertmanager API call, in seconds. A slow Alertmanager never delays a mitigation."""
    min_duration_seconds: float = Field(300, gt=0)
    """Shortest silence created (an action without a cooldown still gets this), in seconds."""


class PrometheusQueries(schemas.Frozen):
    """The PromQL the reader runs (kube-prometheus-stack series by default).

    Placeholders, filled by the reader and escaped: `$namespace`, `$pods` (a regular expression of the
    workload's pod names, replaced pods included) and `$container` (the container's name, or `.+`).
    """

    working_set: str = (
        "max by (namespace, pod, container) (container_memory_working_set_bytes"
        '{container!="", image!="", namespace="$namespace", pod=~"$pods", container=~"$container"})'
    )
    """Working set per container: what the kubelet's OOM decision and the VPA use."""
    rss: str | None = (
        "max by (namespace, pod, container) (container_memory_rss"
        '{container!="", image!="", namespace="$namespace", pod=~"$pods", container=~"$container"})'
    )
    """Resident set (heap, not page cache), to tell a leak from a growing cache; null: not read."""
    limit: str | None = (
        "max by (namespace, pod, container) (kube_pod_container_resource_limits"
        '{resource="memory", namespace="$namespace", pod=~"$pods", container=~"$container"})'
    )
    """Memory limit per container from kube-state-metrics; null: only the limit given with the request."""
    restarts: str | None = (
        "max by (namespace, pod, container) (kube_pod_container_status_restarts_total"
        '{namespace="$namespace", pod=~"$pods", container=~"$container"})'
    )
    """Restart counter per container from kube-state-metrics (lifetimes are split where it increases)."""


class PrometheusSettings(schemas.Frozen):
    """The Prometheus the memory history is read from (runbook Step 3). Unset url: no analysis, as before."""

    url: HttpUrl = None
    """Base URL, e.g. http://prometheus-operated.monitoring.svc:9090 (a path prefix is kept); null: off."""
    bearer_token_file: str | None = None
    """File holding a bearer token (e.g. a ServiceAccount token for an OAuth proxy); read on every start."""
    bearer_token_env: str | None = "OOM_RESPONDER_PROMETHEUS_TOKEN"
    """Environment variable holding the bearer token, used when no file is set."""
    basic_username: str | None = None
    """User name for basic auth (used instead of a bearer token when set)."""
    basic_password_file: str | None = None
    """File holding the basic-auth password."""
    basic_password_env: str | None = "OOM_RESPONDER_PROMETHEUS_PASSWORD"
    """Environment variable holding the basic-auth password, used when no file is set."""
    ca_file: str | None = None
    """PEM bundle to verify an https Prometheus with (default: the system's CAs)."""
    insecure_skip_verify: bool = False
    """Do not verify the server certificate (test clusters only)."""
    timeout_seconds: float = Field(5.0, gt=0, le=60)
    """Longest time one analysis may wait for Prometheus, all queries together, in seconds. A mitigation is
    never delayed longer than this; past it the analysis says insufficient_data."""
    lookback_seconds: float = Field(86400.0, ge=3600, le=7 * 86400)
    """How much history to read, in seconds (default 24 h, at most 7 days)."""
    step_seconds: float = Field(60.0, ge=1, le=3600)
    """Resolution of the history, in seconds (widened when lookback ÷ step would exceed max_points)."""
    max_points: int = Field(11000, ge=100, le=11000)
    """Most points per series and query (Prometheus refuses more than 11,000)."""
    max_series: int = Field(200, gt=0)
    """Most container series read for one workload (pods, replaced ones included); more is an error."""
    max_concurrent_queries: int = Field(4, gt=0)
    """Queries in flight to Prometheus at once, over all analyses of this replica."""
    max_response_bytes: int = Field(32 * 1024 * 1024, gt=0)
    """Largest answer read from Prometheus, in bytes; a bigger one is an error, not a memory spike."""
    queries: PrometheusQueries = Field(default_factory=PrometheusQueries)
    """The PromQL run for a workload."""
    restart_interval_seconds: float = Field(86400.0, gt=0)
    """For a leak, the recommended limit lasts this long between restarts (deploys or scheduled restarts)."""
