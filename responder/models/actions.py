"""The actions the service can take, their options and their traits: one row per action. Data only.

Everything the rest of the service needs to know about an action as a whole lives here, in `TRAITS`: whether
it writes to the cluster, which workload kinds it fits, whether a rollout follows it, its words for humans,
its default cooldown, the ceiling on the amount it writes and the Kubernetes API permissions it needs.
Guarding, resolving, the Slack blocks, the permission list (`doctor` and the chart's RBAC test), `plan` and
the settings read this table; no other module lists actions. What an action decides lives in its pure part
(`responder.logic.actions.<action>`), what it does in its I/O part (`responder.engine.actions.<action>`);
the recipe for adding one is in docs/actions.md.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any

import pydantic
from pydantic import Field

from responder.models import schemas, targets

__all__ = [
    "MAX_MEMORY_ANNOTATION",
    "MAX_REPLICAS_ANNOTATION",
    "RESTARTED_AT_ANNOTATION",
    "TRAITS",
    "VERIFY_PERMISSIONS",
    "Action",
    "ActionSpec",
    "Amount",
    "CaptureDiagnostics",
    "Ceiling",
    "Escalate",
    "EvictPod",
    "HeapDump",
    "Permission",
    "RaiseMemory",
    "RolloutRestart",
    "ScaleOut",
    "ScheduledRestart",
    "Traits",
    "mutating",
    "parse_step",
    "traits_of",
]

RESTARTED_AT_ANNOTATION = "kubectl.kubernetes.io/restartedAt"
"""`kubectl rollout restart` stamps the pod template with it: a rollout_restart and a scheduled restart."""
MAX_MEMORY_ANNOTATION = "oom-responder.io/max-memory"
MAX_REPLICAS_ANNOTATION = "oom-responder.io/max-replicas"


class Action(enum.StrEnum):
    RAISE_MEMORY = "raise_memory"
    SCALE_OUT = "scale_out"
    EVICT_POD = "evict_pod"
    ROLLOUT_RESTART = "rollout_restart"
    CAPTURE_DIAGNOSTICS = "capture_diagnostics"
    HEAP_DUMP = "heap_dump"
    ESCALATE = "escalate"
    SCHEDULED_RESTART = "scheduled_restart"


# ---- options (one model per action; the playbook's `- action: {options}`) ----------------------------------


class RaiseMemory(schemas.Frozen):
    ratio: float = 1.2
    """New limit is at least current × ratio (the Vertical Pod Autoscaler's default margin)."""
    min_step: schemas.MemoryBytes = 100 * 2**20
    """New limit is at least current + min_step (bytes or a quantity such as "100Mi")."""
    max: schemas.MemoryBytes | None = None
    """Ceiling for this playbook; the workload's oom-responder.io/max-memory annotation and the global
    guardrail may lower it further."""
    skip_without_limit: bool = True
    """A container without a memory limit is skipped and reported (true) or given min_step as its first limit
    (false)."""
    resize_in_place: bool = False
    """Also resize the running pod through the pod `resize` subresource (Kubernetes >= 1.33), so it survives
    until the rollout replaces it."""
    revert_on_failure: bool = False
    """Write the previous limit back when the rollout of the raise fails."""
    check_vpa: bool = True
    """Skip workloads managed by a VerticalPodAutoscaler whose updateMode is not Off (needs RBAC on VPAs)."""
    at_least_recommended: bool = True
    """With a memory analysis (`prometheus:`) of a spike or a stable workload, raise at least to its
    right-sized limit (the observed peak + 15 %), within the ceilings. A leak gets the usual step: a bigger
    limit only buys it time, which the notice states."""

    @pydantic.field_validator("ratio")
    @classmethod
    def _ratio(cls, value: float) -> float:
        if value <= 1:
            raise ValueError("must be > 1")
        return value


class ScaleOut(schemas.Frozen):
    step: str = "+1"
    """Replicas to add: "+N", or "+P%" of the current count (rounded up, at least one)."""
    max_replicas: int | None = Field(None, gt=0)
    """Ceiling for this playbook; oom-responder.io/max-replicas and the global guardrail may lower it."""

    @pydantic.field_validator("step")
    @classmethod
    def _step(cls, value: str) -> str:
        parsed = parse_step(value)
        if parsed is None or parsed[0] <= 0:
            raise ValueError('must be "+N" or "+P%" with N, P > 0')
        return value.strip()


def parse_step(step: str) -> tuple[int, bool] | None:
    """`"+N"` → (N, False), `"+P%"` → (P, True); None when it is neither. The one reading of a scale step."""
    text = step.strip().removeprefix("+")
    percent = text.endswith("%")
    digits = text.removesuffix("%")
    if not digits.isascii() or not digits.isdigit():
        return None
    return int(digits), percent


class EvictPod(schemas.Frozen):
    pass


class RolloutRestart(schemas.Frozen):
    pass


class CaptureDiagnostics(schemas.Frozen):
    events: int = Field(20, ge=0)
    """Most recent Kubernetes Events of the pod to attach to the notification."""


class HeapDump(schemas.Frozen):
    runtime: str | None = None
    """Name of the runtime in diagnostics.heap_dump.runtimes whose command is run (jvm, node, python, go);
    the workload's oom-responder.io/heap-dump-runtime annotation wins over it."""


class Escalate(schemas.Frozen):
    message: str = "Automatic mitigation is not enough: a human must look at this workload."
    """Text sent to the notifiers."""


class ScheduledRestart(schemas.Frozen):
    """Runbook Solution 4 (temporary, while the leak is investigated): a rolling restart every interval.

    Each restart is a `rollout_restart` through the guardrails, recorded in the ledger and announced in the
    incident's thread. The schedule stops by itself at `expire_after_seconds` or `max_count`, when the pod
    template's image changes (the fix shipped: a fresh series of verdicts starts instead), after
    `stable_verdicts_to_stop` stable verdicts, on `oom-responder schedules cancel`, or on opt-out.
    """

    interval_seconds: float = Field(21600, gt=0)
    """Fixed interval between restarts, in seconds (the runbook's CronJob: every 6 h). Used when
    `time_to_oom_fraction` is not set, or when no time to OOM is known."""
    time_to_oom_fraction: float | None = Field(None, gt=0, le=1)
    """Derive the interval from the time to OOM instead: this fraction of it (e.g. 0.7 restarts well before
    the kill). The time to OOM comes from the Prometheus analysis, else from how long the OOM-killed container
    had run (its lastState startedAt → finishedAt)."""
    min_interval_seconds: float = Field(3600, gt=0)
    """Floor of a derived interval, in seconds: never restart more often than this."""
    max_interval_seconds: float = Field(86400, gt=0)
    """Ceiling of a derived interval, in seconds."""
    expire_after_seconds: float = Field(7 * 86400, gt=0)
    """The schedule ends this many seconds after it began (7 days): a temporary measure must not become
    permanent unnoticed."""
    max_count: int | None = Field(None, gt=0)
    """The schedule ends after this many restarts (None: only the expiry ends it)."""
    stable_verdicts_to_stop: int = Field(2, ge=1)
    """Consecutive stable verdicts after which the schedule stops by itself."""

    @pydantic.model_validator(mode="after")
    def _floor_below_ceiling(self) -> ScheduledRestart:
        if self.min_interval_seconds > self.max_interval_seconds:
            raise ValueError("min_interval_seconds must not exceed max_interval_seconds")
        return self


class ActionSpec(schemas.Frozen):
    """Exactly one action, written as a one-key mapping: `- raise_memory: {ratio: 1.5}`."""

    raise_memory: RaiseMemory | None = None
    scale_out: ScaleOut | None = None
    evict_pod: EvictPod | None = None
    rollout_restart: RolloutRestart | None = None
    capture_diagnostics: CaptureDiagnostics | None = None
    heap_dump: HeapDump | None = None
    escalate: Escalate | None = None
    scheduled_restart: ScheduledRestart | None = None

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: Any, handler: pydantic.GetJsonSchemaHandler
    ) -> dict[str, Any]:
        # `- evict_pod` (a bare name) or a one-key mapping; `_exactly_one` is not expressible beyond that.
        names = sorted(cls.model_fields)
        mapping = handler(core_schema)
        return {"anyOf": [{"enum": names}, mapping]}

    @pydantic.model_validator(mode="before")
    @classmethod
    def _allow_bare_name(cls, data: Any) -> Any:
        # `- evict_pod` reads better than `- evict_pod: {}` for actions without options.
        if isinstance(data, str):
            return {data: {}}
        if isinstance(data, dict):
            return {key: ({} if value is None else value) for key, value in data.items()}
        return data

    # The chosen action, found once at validation: it is asked for several times per alert.
    _action: Action | None = pydantic.PrivateAttr(default=None)

    @pydantic.model_validator(mode="after")
    def _exactly_one(self) -> ActionSpec:
        chosen = [name for name in type(self).model_fields if getattr(self, name) is not None]
        if len(chosen) != 1:
            raise ValueError(f"exactly one action per entry, got {chosen or 'none'}")
        self._action = Action(chosen[0])
        return self

    @property
    def action(self) -> Action:
        if self._action is None:
            raise AssertionError("validated to hold one action")
        return self._action

    @property
    def options(self) -> pydantic.BaseModel:
        """The action's options, an instance of its `Traits.options` (validated so)."""
        options = getattr(self, self.action.value)
        assert isinstance(options, pydantic.BaseModel)
        return options


# ---- traits --------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True, order=True)
class Permission:
    """One Kubernetes API permission (a SelfSubjectAccessReview's attributes, and a chart RBAC rule)."""

    group: str
    """API group ("" for the core group)."""
    resource: str
    subresource: str
    verb: str
    why: str = dataclasses.field(compare=False)
    own_namespace: bool = False
    """Needed only in the service's own namespace (the guardrail state object)."""


class Amount(enum.StrEnum):
    """What the number an action writes counts: guardrails check ceilings and steps on it."""

    BYTES = "bytes"
    REPLICAS = "replicas"


@dataclasses.dataclass(frozen=True, slots=True)
class Ceiling:
    """Where the ceiling on an action's amount comes from: the lowest of the three wins."""

    amount: Amount
    annotation: str
    """The workload's own ceiling."""
    guardrail: str
    """The field of `guardrails` holding the global ceiling."""
    option: str
    """The field of the action's options holding the playbook's ceiling."""


@dataclasses.dataclass(frozen=True, slots=True)
class Traits:
    options: type[pydantic.BaseModel]
    """The options model of the action (the value under its key in a playbook)."""
    mutating: bool
    """Writes to the cluster: guarded fully, spends budget, recorded in the ledger, one per playbook run.
    A non-mutating action (diagnostics, escalation) is carried out in addition to the mitigation."""
    kinds: frozenset[targets.WorkloadKind]
    """Workload kinds the action fits; on any other kind it is skipped (the playbook's next action is tried)."""
    done_words: str
    """For humans, when it was done ("memory limit raised")."""
    would_words: str
    """For humans, in dry-run ("would raise the memory limit")."""
    before_mitigation: bool = False
    """For a non-mutating action: it collects evidence the mitigation's rollout or eviction would destroy (the
    alerted pod, its previous log, its heap), so it is carried out before the mitigation, not after it."""
    follows_rollout: bool = False
    """The write changes the pod template or the replica count: a rollout follows and is verified."""
    changes_template: bool = False
    """The write changes the pod template: a paused Deployment would never roll it out."""
    cooldown_seconds: float = 0.0
    """Default per-workload cooldown (guardrails.cooldown_seconds)."""
    ceiling: Ceiling | None = None
    """For actions that write an amount."""
    permissions: tuple[Permission, ...] = ()
    """API permissions the action needs whatever its options."""
    option_permissions: Mapping[str, tuple[Permission, ...]] = dataclasses.field(default_factory=dict)
    """Further permissions needed while a boolean option of that name is on."""
    source_field: str | None = None
    """The field of the workload's manifest the write changes, when a GitOps source (Argo CD, Flux) declares
    it: the controller reverts the write on its next sync, so the notice says what to commit instead."""


_WORKLOADS = (("apps", "deployments"), ("apps", "statefulsets"), ("apps", "daemonsets"))
_TEMPLATED = frozenset(
    {targets.WorkloadKind.DEPLOYMENT, targets.WorkloadKind.STATEFUL_SET, targets.WorkloadKind.DAEMON_SET}
)
_SCALABLE = frozenset({targets.WorkloadKind.DEPLOYMENT, targets.WorkloadKind.STATEFUL_SET})
_ANY = frozenset(targets.WorkloadKind)

VERIFY_PERMISSIONS: tuple[Permission, ...] = (
    Permission(
        "", "events", "", "list", "find FailedCreate Events of a StatefulSet's or DaemonSet's rollout"
    ),
)
"""What following a rollout needs (every action with `follows_rollout`)."""


def _patch_workloads(why: str) -> tuple[Permission, ...]:
    return tuple(Permission(group, resource, "", "patch", why) for group, resource in _WORKLOADS)


TRAITS: Mapping[Action, Traits] = {
    Action.RAISE_MEMORY: Traits(
        options=RaiseMemory,
        mutating=True,
        kinds=_TEMPLATED,  # a Job's template is immutable, a bare pod has none
        done_words="memory limit raised",
        would_words="would raise the memory limit",
        follows_rollout=True,
        changes_template=True,
        source_field="resources.limits.memory",
        cooldown_seconds=1800.0,
        ceiling=Ceiling(Amount.BYTES, MAX_MEMORY_ANNOTATION, guardrail="max_memory", option="max"),
        permissions=(
            *_patch_workloads("write the new limit with the ledger"),
            Permission("", "pods", "", "create", "dry-run the new pod against ResourceQuota and LimitRange"),
        ),
        option_permissions={
            "check_vpa": (
                Permission("autoscaling.k8s.io", "verticalpodautoscalers", "", "list", "do not fight a VPA"),
            ),
            "resize_in_place": (
                Permission("", "pods", "resize", "patch", "resize the running pod in place"),
            ),
        },
    ),
    Action.SCALE_OUT: Traits(
        options=ScaleOut,
        mutating=True,
        kinds=_SCALABLE,  # a DaemonSet runs one pod per node; a Job is not scaled
        done_words="scaled out",
        would_words="would scale out",
        follows_rollout=True,
        source_field="spec.replicas",
        cooldown_seconds=600.0,
        ceiling=Ceiling(
            Amount.REPLICAS, MAX_REPLICAS_ANNOTATION, guardrail="max_replicas", option="max_replicas"
        ),
        permissions=(
            Permission("apps", "deployments", "", "patch", "write spec.replicas with the ledger"),
            Permission("apps", "statefulsets", "", "patch", "write spec.replicas with the ledger"),
            Permission("autoscaling", "horizontalpodautoscalers", "", "list", "find an HPA on the workload"),
            Permission("autoscaling", "horizontalpodautoscalers", "", "patch", "raise the HPA's minReplicas"),
        ),
    ),
    Action.EVICT_POD: Traits(
        options=EvictPod,
        mutating=True,
        kinds=_ANY,
        done_words="pod evicted",
        would_words="would evict the pod",
        cooldown_seconds=300.0,
        permissions=(
            Permission("", "pods", "eviction", "create", "evict the hot pod (PDBs honoured)"),
            *_patch_workloads("record the eviction in the ledger"),
            # A Job's pod: the Job is the top-level workload and carries the ledger entry.
            Permission("batch", "jobs", "", "patch", "record the eviction in the Job's ledger"),
        ),
    ),
    Action.ROLLOUT_RESTART: Traits(
        options=RolloutRestart,
        mutating=True,
        kinds=_TEMPLATED,
        done_words="rollout restarted",
        would_words="would restart the rollout",
        follows_rollout=True,
        changes_template=True,
        source_field="the pod template's kubectl.kubernetes.io/restartedAt annotation",
        cooldown_seconds=900.0,
        permissions=_patch_workloads("stamp restartedAt with the ledger"),
    ),
    Action.CAPTURE_DIAGNOSTICS: Traits(
        options=CaptureDiagnostics,
        mutating=False,
        kinds=_ANY,
        done_words="diagnostics captured",
        would_words="would capture diagnostics",
        before_mitigation=True,
        permissions=(
            Permission("", "events", "", "list", "read the pod's recent Events"),
            Permission("", "pods", "log", "get", "read the OOM-killed container's previous log"),
        ),
    ),
    Action.HEAP_DUMP: Traits(
        options=HeapDump,
        mutating=False,
        # The claim that keeps it to one per cooldown is an annotation on the top-level workload.
        kinds=frozenset(_TEMPLATED | {targets.WorkloadKind.JOB}),
        done_words="heap dump taken",
        would_words="would take a heap dump",
        before_mitigation=True,
        cooldown_seconds=3600.0,
        permissions=(
            # The websocket upgrade is a GET that the API server (>= 1.35) authorizes as get and create.
            Permission("", "pods", "exec", "get", "run the heap-dump command (websocket upgrade)"),
            Permission("", "pods", "exec", "create", "run the heap-dump command"),
            *_patch_workloads("claim the heap dump of this cooldown on the workload"),
            Permission("batch", "jobs", "", "patch", "claim the heap dump of this cooldown on the Job"),
        ),
    ),
    Action.ESCALATE: Traits(
        options=Escalate,
        mutating=False,
        kinds=_ANY,
        done_words="escalated to humans",
        would_words="would escalate to humans",
    ),
    Action.SCHEDULED_RESTART: Traits(
        options=ScheduledRestart,
        # Carried out beside the mitigation: it writes a schedule into the workload's follow-up record; each
        # restart it later makes is a rollout_restart guarded in full at its own time.
        mutating=False,
        kinds=_TEMPLATED,
        done_words="restarts scheduled",
        would_words="would schedule restarts",
        permissions=(
            *_patch_workloads("stamp restartedAt with the ledger on each scheduled restart"),
            Permission(
                "", "pods", "", "list", "read the workload's pods for the time to OOM and the verdicts"
            ),
        ),
    ),
}
"""One row per action; a test keeps it complete and each row's options equal to its `ActionSpec` field."""


def traits_of(action: Action) -> Traits:
    return TRAITS[action]


def mutating() -> frozenset[Action]:
    """Actions that write to the cluster: only these spend budget, are rate-limited and appear in ledgers."""
    return frozenset(action for action, traits in TRAITS.items() if traits.mutating)
