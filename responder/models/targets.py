"""The workload a mitigation acts on. Data only."""

from __future__ import annotations

import dataclasses
import enum

__all__ = ["Target", "WorkloadKind"]


class WorkloadKind(enum.StrEnum):
    DEPLOYMENT = "Deployment"
    STATEFUL_SET = "StatefulSet"
    DAEMON_SET = "DaemonSet"
    JOB = "Job"
    POD = "Pod"


@dataclasses.dataclass(frozen=True, slots=True)
class Target:
    """The top-level workload: cooldowns are keyed here, never on a ReplicaSet (it changes every rollout)."""

    kind: WorkloadKind
    namespace: str
    name: str

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.kind.value}/{self.name}"
