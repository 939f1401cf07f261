"""Workloads a GitOps controller owns. Data only.

Argo CD and Flux re-apply what Git says: a memory limit raised by a PATCH is reverted on the next sync (Argo CD
self-heal, Flux's drift correction) and the OOM kills return. `GitOpsOwner` names the controller and its
object (the Argo CD Application, the Flux Kustomization or HelmRelease) so a notice can say who will revert
the change and what to commit instead.
"""

from __future__ import annotations

import dataclasses
import enum

__all__ = ["GitOpsMode", "GitOpsOwner", "GitOpsTool"]


class GitOpsTool(enum.StrEnum):
    ARGO_CD = "argocd"
    FLUX = "flux"


class GitOpsMode(enum.StrEnum):
    """What a playbook does to a workload a GitOps controller owns."""

    ACT = "act"
    """Act anyway (the change buys time until the next sync) and say what to commit."""
    RECOMMEND = "recommend"
    """Change nothing; say what to commit (and page a human: only a commit fixes it)."""


@dataclasses.dataclass(frozen=True, slots=True)
class GitOpsOwner:
    """The GitOps object that manages a workload."""

    tool: GitOpsTool
    kind: str
    """`Application` (Argo CD), `Kustomization` or `HelmRelease` (Flux)."""
    name: str
    namespace: str | None = None
    """The object's namespace when the tracking metadata says it (Flux does; Argo CD's tracking id does not)."""

    @property
    def title(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        tool = "Argo CD" if self.tool is GitOpsTool.ARGO_CD else "Flux"
        return f"{tool} {self.kind} {where}{self.name}"
