"""The service's configuration, validated at the boundary.

Data only: loading a file and reading secrets happen in `responder.config`, not here. Models are frozen and
forbid unknown keys, so a typo in the YAML is an error with its key path rather than a silently ignored setting.
Every field has a docstring giving its meaning and unit; `config/responder.yaml` documents the same keys.
"""

from __future__ import annotations

import enum
import re
from typing import Any, Literal

import pydantic
from pydantic import Field

from responder.models import actions, analyses, schemas
from responder.models import gitops as gitops_mod
from responder.models.diagnostic_settings import (
    DEFAULT_LOG_PATTERNS,
    DEFAULT_REDACTION,
    DiagnosticsSettings,
    HeapDumpRuntime,
    HeapDumpSettings,
    PreviousLogsSettings,
)
from responder.models.monitoring_settings import AlertmanagerSettings, PrometheusQueries, PrometheusSettings

__all__ = [
    "DEFAULT_LOG_PATTERNS",
    "DEFAULT_REDACTION",
    "Action",
    "ActionSpec",
    "AlertKind",
    "AlertmanagerSettings",
    "AlertsSettings",
    "AuthSettings",
    "BlastRadiusSettings",
    "BudgetSettings",
    "CapSettings",
    "DedupSettings",
    "DiagnosticsSettings",
    "FollowUpSettings",
    "GuardrailSettings",
    "HeapDumpRuntime",
    "HeapDumpSettings",
    "KubernetesSettings",
    "LoggingSettings",
    "Matcher",
    "Mode",
    "NotifierSettings",
    "Playbook",
    "PreviousLogsSettings",
    "PrometheusQueries",
    "PrometheusSettings",
    "QueueSettings",
    "ScheduledRestart",
    "ServerSettings",
    "Settings",
    "SlackSettings",
    "VerificationSettings",
    "WebhookNotifierSettings",
]


MemoryBytes = schemas.MemoryBytes

# Actions and their options live with their traits (`responder.models.actions`); these names stay here too
# because a playbook is configuration and is read as `settings.ActionSpec(raise_memory=settings.RaiseMemory())`.
Action = actions.Action
ActionSpec = actions.ActionSpec
RaiseMemory = actions.RaiseMemory
ScaleOut = actions.ScaleOut
EvictPod = actions.EvictPod
RolloutRestart = actions.RolloutRestart
CaptureDiagnostics = actions.CaptureDiagnostics
Escalate = actions.Escalate
ScheduledRestart = actions.ScheduledRestart


class Mode(enum.StrEnum):
    DRY_RUN = "dry-run"
    ENFORCE = "enforce"


class AlertKind(enum.StrEnum):
    """What an alert means to the service, whatever the alert is called in the cluster."""

    OOM_KILLED = "oom_killed"
    MEMORY_HIGH = "memory_high"
    RESTARTING_FREQUENTLY = "restarting_frequently"


class ServerSettings(schemas.Frozen):
    host: str = "0.0.0.0"  # Alertmanager reaches it from other pods.
    """Address to listen on."""
    port: int = Field(8080, ge=0, le=65535)
    """TCP port for /webhook, /healthz, /readyz and /metrics (0 picks a free port)."""
    max_body_bytes: int = Field(1024 * 1024, gt=0)
    """Largest webhook body accepted, in bytes; larger bodies get 413 without being read in full."""
    shutdown_timeout_seconds: float = Field(20.0, gt=0)
    """On SIGTERM, how long in-flight mitigations may run before they are cancelled, in seconds.
    Keep it below the pod's terminationGracePeriodSeconds."""
    handoff_url: str | None = None
    """On SIGTERM, alerts still queued or running when shutdown_timeout_seconds is up are posted here, to be
    taken over by a live replica: the webhook URL of the Service in front of every replica
    (http://oom-responder.<namespace>.svc:8080/webhook). Unset: they are cancelled and logged as lost."""
    handoff_timeout_seconds: float = Field(10.0, gt=0)
    """How long to keep trying to hand those alerts off, in seconds (the Service may route the post back to
    this replica, which refuses it while shutting down). Keep shutdown_timeout_seconds plus this below the
    pod's terminationGracePeriodSeconds."""
    header_timeout_seconds: float = Field(10.0, gt=0)
    """A new connection that has not sent complete request headers within this many seconds is closed
    (slow-header clients would otherwise hold connections and file descriptors for ever)."""
    idle_timeout_seconds: float = Field(30.0, gt=0)
    """An idle keep-alive connection is closed after this many seconds without a request."""
    body_timeout_seconds: float = Field(30.0, gt=0)
    """A webhook body not received in full within this many seconds is answered 408."""
    max_connections: int = Field(200, gt=0)
    """Client connections held open at once. A new connection beyond it closes the oldest one that has not
    sent a complete request (else the oldest), so probes and Alertmanager always get in. Lowered at start
    to stay below the process's open-file limit."""


class AuthSettings(schemas.Frozen):
    """Who may post alerts. Secrets come from files or environment variables, never from this file."""

    mode: Literal["bearer", "basic", "bearer-or-basic", "none"] = "bearer"
    """bearer: Alertmanager's `authorization.credentials_file`; basic: `basic_auth`; none: no auth (warns)."""
    bearer_token_file: str | None = None
    """File holding the bearer token (mounted Secret)."""
    bearer_token_env: str | None = "OOM_RESPONDER_WEBHOOK_TOKEN"
    """Environment variable holding the bearer token, used when no file is set."""
    basic_username: str | None = None
    """User name for basic auth."""
    basic_password_file: str | None = None
    """File holding the basic-auth password."""
    basic_password_env: str | None = "OOM_RESPONDER_WEBHOOK_PASSWORD"
    """Environment variable holding the basic-auth password, used when no file is set."""


class DedupSettings(schemas.Frozen):
    max_entries: int = Field(100_000, gt=0)
    """Occurrences remembered for deduplication (fingerprint + startsAt); the oldest are forgotten first."""
    ttl_seconds: float = Field(3600, gt=0)
    """How long an occurrence is remembered, in seconds. Keep it above Alertmanager's group_interval (group
    re-sends and HA peers' copies are absorbed) and below its repeat_interval: a repeat is how a still-firing
    alert gets its live state checked again (a new OOM kill under the same occurrence, a refilled budget)."""


class QueueSettings(schemas.Frozen):
    max_pending: int = Field(10_000, gt=0)
    """Alerts waiting for a worker; when full the webhook answers 503 and Alertmanager retries."""
    workers: int = Field(16, gt=0)
    """Targets worked on in parallel (one alert at a time per target)."""


class AlertsSettings(schemas.Frozen):
    names: dict[str, AlertKind] = Field(
        default_factory=lambda: {
            "OOMKilled": AlertKind.OOM_KILLED,
            "PodMemoryHigh": AlertKind.MEMORY_HIGH,
            # The runbook's prevention alert (config/alert-rules.yaml): a leak on its way to the limit is
            # answered like memory near the limit, hours earlier.
            "PodMemoryTrendingToOOM": AlertKind.MEMORY_HIGH,
            "PodRestartingFrequently": AlertKind.RESTARTING_FREQUENTLY,
        }
    )
    """Alert name (the `alertname` label) → what it means. Map kube-prometheus names in here."""
    namespace_label: str = "namespace"
    """Label carrying the pod's namespace."""
    pod_label: str = "pod"
    """Label carrying the pod's name."""
    container_label: str = "container"
    """Label carrying the container's name."""
    severity_label: str = "severity"
    """Label carrying the severity."""
    workload_kind_label: str = "workload_kind"
    """Label naming the owning workload's kind, used when the pod is gone (e.g. from kube-state-metrics joins)."""
    workload_name_label: str = "workload"
    """Label naming the owning workload, used when the pod is gone."""
    workload_type_label: str = "workload_type"
    """kube-prometheus's owner-kind label (`namespace_workload_pod:kube_pod_owner:relabel` joins write
    `workload_type="deployment"` next to `workload`), read when `workload_kind_label` is absent; empty: not read."""


_MATCHER = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*$')


class Matcher(schemas.Frozen):
    """An Alertmanager-style label matcher: `name="value"`, `name!="v"`, `name=~"re"`, `name!~"re"`."""

    name: str
    op: Literal["=", "!=", "=~", "!~"]
    value: str

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: Any, handler: pydantic.GetJsonSchemaHandler
    ) -> dict[str, Any]:
        # The file writes a matcher as one string; the object form is accepted too.
        return {"anyOf": [{"type": "string", "pattern": _MATCHER.pattern}, handler(core_schema)]}

    @pydantic.model_validator(mode="before")
    @classmethod
    def _parse(cls, data: Any) -> Any:
        if isinstance(data, str):
            match = _MATCHER.match(data)
            if not match:
                raise ValueError(f'not a label matcher (want name="value", !=, =~ or !~): {data!r}')
            name, op, raw = match.groups()
            data = {"name": name, "op": op, "value": raw.encode().decode("unicode_escape")}
        return data

    @pydantic.model_validator(mode="after")
    def _check_regex(self) -> Matcher:
        if self.op in ("=~", "!~"):
            try:
                re.compile(self.value)
            except re.error as e:
                raise ValueError(f"bad regular expression {self.value!r}: {e}") from e
        return self


class Playbook(schemas.Frozen):
    name: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9-]*$")
    """Unique name; appears in metrics, ledgers, Events and notifications."""
    alerts: list[AlertKind] = Field(min_length=1)
    """Alert kinds this playbook answers."""
    matchers: list[Matcher] = Field(default_factory=list)
    """Label matchers that must all hold (Alertmanager syntax)."""
    pattern: list[analyses.Pattern] | None = None
    """Memory patterns (from the workload's history, `prometheus:`) this playbook answers; null: any, and
    also when no analysis is available. A playbook with a pattern is skipped when there is no analysis, so a
    later one without a pattern answers as if Prometheus were not configured."""
    gitops: gitops_mod.GitOpsMode = gitops_mod.GitOpsMode.ACT
    """For a workload an Argo CD Application or a Flux Kustomization/HelmRelease owns (its tracking labels or
    annotations say so), which will revert a change on its next sync: `act` changes it anyway (it buys time
    until the sync) and the notice says what to commit; `recommend` changes nothing, says what to commit and
    lets the playbook's escalation page a human."""
    actions: list[ActionSpec] = Field(min_length=1)
    """Actions in order; the first one that applies to the target is taken, the later ones are fallbacks
    (a DaemonSet cannot be scaled out, so `scale_out` then `evict_pod` evicts). `capture_diagnostics` and
    `escalate` are always carried out in addition."""


class BudgetSettings(schemas.Frozen):
    mutations: int = Field(20, ge=0)
    """Cluster-wide writes allowed per window (a token bucket shared by every replica)."""
    window_seconds: float = Field(600, gt=0)
    """The budget refills fully over this many seconds."""


class CapSettings(schemas.Frozen):
    max_actions: int = Field(3, gt=0)
    """Actions on one workload within the window before the service escalates to humans instead."""
    window_seconds: float = Field(3600, gt=0)
    """Window for max_actions, in seconds."""


class BlastRadiusSettings(schemas.Frozen):
    max_workloads: int = Field(10, gt=0)
    """More distinct workloads alerting than this within the window trips the breaker: no more writes."""
    window_seconds: float = Field(300, gt=0)
    """Window for counting distinct workloads, in seconds."""
    quiet_seconds: float = Field(600, gt=0)
    """The breaker closes again after this many seconds without new workloads alerting (or on `resume`)."""


class GuardrailSettings(schemas.Frozen):
    namespaces_include: list[str] = Field(default_factory=lambda: ["*"])
    """Namespace globs the service may act in."""
    namespaces_exclude: list[str] = Field(
        default_factory=lambda: ["kube-system", "kube-public", "kube-node-lease"]
    )
    """Namespace globs it never acts in (wins over include). Its own namespace is excluded too unless
    `act_in_own_namespace` is set."""
    act_in_own_namespace: bool = False
    """Allow mitigations in the namespace the service runs in."""
    opt_in: bool = False
    """false: every workload is managed unless annotated oom-responder.io/enabled: "false";
    true: only workloads annotated oom-responder.io/enabled: "true"."""
    max_memory: schemas.MemoryBytes = 16 * 2**30
    """Global ceiling on any container memory limit the service writes."""
    max_replicas: int = Field(50, gt=0)
    """Global ceiling on replicas (and HPA minReplicas) the service writes."""
    max_memory_step_ratio: float = Field(2.0, gt=1)
    """No single raise may multiply a limit by more than this."""
    cooldown_seconds: dict[Action, float] = Field(
        default_factory=lambda: {
            action: traits.cooldown_seconds
            for action, traits in actions.TRAITS.items()
            if traits.mutating or traits.cooldown_seconds
        }
    )
    """Per workload and action, seconds after an action before the same action again (from the ledger; for
    heap_dump, from its claim annotation)."""
    cap: CapSettings = Field(default_factory=CapSettings)
    budget: BudgetSettings = Field(default_factory=BudgetSettings)
    blast_radius: BlastRadiusSettings = Field(default_factory=BlastRadiusSettings)
    state_namespace: str | None = None
    """Namespace of the cluster-wide state object; defaults to the service's own namespace."""
    state_name: str = "oom-responder-state"
    """Name of the ConfigMap holding the global budget, the breaker and the pause switch."""


class KubernetesSettings(schemas.Frozen):
    kubeconfig: str | None = None
    """Kubeconfig file; unset means in-cluster config, then ~/.kube/config."""
    context: str | None = None
    """Kubeconfig context to use."""
    qps: float = Field(20.0, gt=0)
    """Sustained API requests per second (client-side limiter, like client-go's)."""
    burst: int = Field(40, gt=0)
    """Requests allowed above qps in a burst."""
    request_timeout_seconds: float = Field(10.0, gt=0)
    """Timeout of every API call, in seconds."""
    max_attempts: int = Field(5, gt=0)
    """Attempts for a retriable failure (429, 5xx, timeout, dropped connection)."""
    conflict_attempts: int = Field(3, gt=0)
    """Re-read and re-plan attempts after a 409 conflict."""
    namespaces: list[str] = Field(default_factory=list)
    """Namespaces the service may read and write; empty means the whole cluster (ClusterRole)."""
    own_namespace: str | None = None
    """The service's own namespace; defaults to the pod's (service-account namespace file), else "default"."""
    watch_cache: bool = False
    """Keep a watch-fed copy of Deployments, StatefulSets, DaemonSets, ReplicaSets, HPAs, PDBs, ResourceQuotas
    and LimitRanges (listed once, then watched, in `namespaces` or cluster-wide) and read them from it instead
    of one GET per read; rollouts are then followed on the watch. Writes still carry the resourceVersion
    precondition and a 409 is re-read from the API server. Needs list and watch on those resources."""


class VerificationSettings(schemas.Frozen):
    timeout_seconds: float = Field(300, gt=0)
    """How long to follow a rollout before reporting it as failed, in seconds."""
    poll_seconds: float = Field(2.0, gt=0)
    """Interval between rollout checks, in seconds."""


class FollowUpSettings(schemas.Frozen):
    """Runbook Step 6: stay with the incident until it is over, and verdicts at horizons after each mitigation."""

    enabled: bool = True
    """Take verdicts after mitigations and run restart schedules (false: only the rollout is verified)."""
    horizons_seconds: list[float] = Field(default_factory=lambda: [3600.0, 21600.0, 86400.0, 172800.0])
    """When verdicts are taken, in seconds after the mitigation (1 h, 6 h, 24 h, 48 h). The incident is
    closed after the last one when all were stable."""
    poll_seconds: float = Field(30.0, gt=0)
    """How often each replica looks for follow-ups that are due, in seconds (one labelled LIST)."""
    claim_seconds: float = Field(120.0, gt=0)
    """A replica's claim on a due follow-up lapses after this many seconds, so work held by a replica that
    died is taken over by another. Keep it above the longest single step (a rollout check, a restart)."""
    late_after_seconds: float = Field(300.0, ge=0)
    """A verdict taken more than this many seconds after its due time says how late it is and why."""
    memory_high_percent: float = Field(80.0, gt=0, le=100)
    """Memory at or above this % of the limit is not stable (the runbook's success criterion: < 80 %)."""
    max_restarts_per_hour: float = Field(1.0, ge=0)
    """More container restarts per hour than this since the last look breaks "restart count not increasing"
    (the runbook alerts on > 1 restart an hour)."""
    namespace: str | None = None
    """Namespace of the follow-up records (one ConfigMap per followed workload); defaults to the service's
    own namespace."""

    @pydantic.field_validator("horizons_seconds")
    @classmethod
    def _horizons(cls, value: list[float]) -> list[float]:
        if any(seconds <= 0 for seconds in value):
            raise ValueError("every horizon must be > 0 seconds")
        if len(set(value)) != len(value):
            raise ValueError("horizons must differ")
        return sorted(value)


class SlackSettings(schemas.Frozen):
    enabled: bool = False
    """Send notifications to Slack."""
    token_file: str | None = None
    """File holding a bot token (chat.postMessage, threads)."""
    token_env: str | None = "OOM_RESPONDER_SLACK_TOKEN"
    """Environment variable holding the bot token."""
    webhook_url_file: str | None = None
    """File holding an incoming-webhook URL (no threads); used when no token is found."""
    webhook_url_env: str | None = "OOM_RESPONDER_SLACK_WEBHOOK_URL"
    """Environment variable holding the incoming-webhook URL."""
    channel: str | None = None
    """Channel id or name for chat.postMessage (required with a token)."""
    api_url: str = "https://slack.com/api/"
    """Slack Web API base URL."""
    messages_per_second: float = Field(1.0, gt=0)
    """Pacing per channel (Slack allows about one message per second)."""
    digest_after: int = Field(5, gt=0)
    """More notices than this waiting at once are sent as one digest message."""
    outbox_size: int = Field(1000, gt=0)
    """Notices waiting to be sent; beyond it the oldest are dropped and counted."""
    timeout_seconds: float = Field(10.0, gt=0)
    """Timeout of one Slack call, in seconds."""
    max_attempts: int = Field(5, gt=0)
    """Attempts for a message failing with 5xx or a timeout before it is counted as failed (a 429 waits
    for its Retry-After and does not use an attempt)."""


class WebhookNotifierSettings(schemas.Frozen):
    name: str = Field(min_length=1)
    """Name used in metrics and logs."""
    url_file: str | None = None
    """File holding the URL to POST notices to."""
    url_env: str | None = None
    """Environment variable holding the URL."""
    timeout_seconds: float = Field(10.0, gt=0)
    """Timeout of one POST, in seconds."""
    outbox_size: int = Field(1000, gt=0)
    """Notices waiting to be sent; beyond it the oldest are dropped and counted."""
    messages_per_second: float = Field(5.0, gt=0)
    """Pacing: POSTs per second at most."""
    digest_after: int = Field(5, gt=0)
    """More notices than this waiting at once are sent in one POST (`"digest": true`)."""
    max_attempts: int = Field(5, gt=0)
    """Attempts for a POST failing with 5xx or a timeout before it is counted as failed."""


class NotifierSettings(schemas.Frozen):
    slack: SlackSettings = Field(default_factory=SlackSettings)
    webhooks: list[WebhookNotifierSettings] = Field(default_factory=list)
    repeat_window_seconds: float = Field(600, ge=0)
    """A refusal (blocked, failed or skipped) for the same workload, action and reason is notified, and
    recorded as an Event, once per this many seconds; repeats within it (Alertmanager's repeats, a storm) are
    counted and the count is given with the next one. 0 sends every one."""


class LoggingSettings(schemas.Frozen):
    format: Literal["json", "text"] = "json"
    """json: one object per line; text: for humans at a terminal."""
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Lowest level logged."""


def _default_playbooks() -> list[Playbook]:
    # The first three answer only with a memory analysis (`prometheus:`); without one, or for a stable
    # workload, oom-raise-memory answers as it always did (RB-010 Step 3 picks the response by pattern).
    leak = "A memory leak: the raise only buys time (see the memory history); the leak must be fixed."
    accelerating = (
        "An accelerating memory leak: raising the limit does not help; the workload was scaled out and must "
        "be fixed or restarted on a schedule."
    )
    return [
        Playbook(
            name="oom-spike",
            alerts=[AlertKind.OOM_KILLED],
            pattern=[analyses.Pattern.SPIKE],
            actions=[ActionSpec(raise_memory=RaiseMemory())],
        ),
        Playbook(
            name="oom-leak",
            alerts=[AlertKind.OOM_KILLED],
            pattern=[analyses.Pattern.LINEAR_LEAK, analyses.Pattern.SAWTOOTH_LEAK],
            actions=[ActionSpec(raise_memory=RaiseMemory()), ActionSpec(escalate=Escalate(message=leak))],
        ),
        Playbook(
            name="oom-accelerating",
            alerts=[AlertKind.OOM_KILLED],
            pattern=[analyses.Pattern.ACCELERATING],
            actions=[
                ActionSpec(scale_out=ScaleOut()),
                ActionSpec(rollout_restart=RolloutRestart()),
                ActionSpec(escalate=Escalate(message=accelerating)),
            ],
        ),
        Playbook(
            name="memory-high-spike",
            alerts=[AlertKind.MEMORY_HIGH],
            pattern=[analyses.Pattern.SPIKE],
            actions=[ActionSpec(evict_pod=EvictPod())],
        ),
        Playbook(
            name="oom-raise-memory",
            alerts=[AlertKind.OOM_KILLED],
            actions=[ActionSpec(raise_memory=RaiseMemory())],
        ),
        Playbook(
            name="memory-high-scale-out",
            alerts=[AlertKind.MEMORY_HIGH],
            actions=[ActionSpec(scale_out=ScaleOut()), ActionSpec(evict_pod=EvictPod())],
        ),
        Playbook(
            name="restarting-scale-out",
            alerts=[AlertKind.RESTARTING_FREQUENTLY],
            actions=[
                ActionSpec(scale_out=ScaleOut()),
                ActionSpec(capture_diagnostics=CaptureDiagnostics()),
                ActionSpec(escalate=Escalate()),
            ],
        ),
    ]


class Settings(schemas.Frozen):
    mode: Mode = Mode.DRY_RUN
    """dry-run: plan, guard and report "would do", never write; enforce: write."""
    identity: str | None = None
    """This replica's name in ledgers and Events; defaults to $POD_NAME, then the host name."""
    server: ServerSettings = Field(default_factory=ServerSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    dedup: DedupSettings = Field(default_factory=DedupSettings)
    queue: QueueSettings = Field(default_factory=QueueSettings)
    alerts: AlertsSettings = Field(default_factory=AlertsSettings)
    playbooks: list[Playbook] = Field(default_factory=_default_playbooks)
    guardrails: GuardrailSettings = Field(default_factory=GuardrailSettings)
    kubernetes: KubernetesSettings = Field(default_factory=KubernetesSettings)
    verification: VerificationSettings = Field(default_factory=VerificationSettings)
    follow_up: FollowUpSettings = Field(default_factory=FollowUpSettings)
    notifiers: NotifierSettings = Field(default_factory=NotifierSettings)
    diagnostics: DiagnosticsSettings = Field(default_factory=DiagnosticsSettings)
    alertmanager: AlertmanagerSettings = Field(default_factory=AlertmanagerSettings)
    prometheus: PrometheusSettings = Field(default_factory=PrometheusSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)

    @pydantic.model_validator(mode="after")
    def _unique_playbooks(self) -> Settings:
        seen: set[str] = set()
        for playbook in self.playbooks:
            if playbook.name in seen:
                raise ValueError(f"playbook name {playbook.name!r} is used twice")
            seen.add(playbook.name)
        return self
