"""Tracking: which GitOps controller, if any, owns a workload, from the workload's own metadata.

Pure: takes the object's labels and annotations, returns a `GitOpsOwner` or None; no I/O, no clock. The marks
read are the ones the controllers write themselves:

* Argo CD, annotation tracking (the default since Argo CD 3.0): `argocd.argoproj.io/tracking-id:
  <app>:<group>/<kind>:<namespace>/<name>`; label tracking with a dedicated key: `argocd.argoproj.io/instance`.
  Argo CD's older default label key, `app.kubernetes.io/instance`, is also what Helm writes, so it proves
  nothing and is read only when configured (`extra_argocd_labels`).
* Flux: `kustomize.toolkit.fluxcd.io/name` + `/namespace` (a Kustomization), `helm.toolkit.fluxcd.io/name` +
  `/namespace` (a HelmRelease). An object annotated `kustomize.toolkit.fluxcd.io/reconcile: disabled` is left
  alone by Flux, so it is not owned.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from responder.models import gitops

__all__ = ["ARGOCD_INSTANCE_LABEL", "ARGOCD_TRACKING_ANNOTATION", "find_owner", "recommendation"]

ARGOCD_TRACKING_ANNOTATION = "argocd.argoproj.io/tracking-id"
ARGOCD_INSTANCE_LABEL = "argocd.argoproj.io/instance"
_FLUX = (
    ("kustomize.toolkit.fluxcd.io", "Kustomization"),
    ("helm.toolkit.fluxcd.io", "HelmRelease"),
)
_FLUX_RECONCILE = "kustomize.toolkit.fluxcd.io/reconcile"


def find_owner(
    *,
    labels: Mapping[str, str] | None,
    annotations: Mapping[str, str] | None,
    extra_argocd_labels: Sequence[str] = (),
) -> gitops.GitOpsOwner | None:
    """The GitOps object managing a workload with these labels and annotations, or None."""
    labels = labels or {}
    annotations = annotations or {}
    if annotations.get(_FLUX_RECONCILE, "").lower() != "disabled":
        for group, kind in _FLUX:
            name = labels.get(f"{group}/name")
            if name:
                return gitops.GitOpsOwner(
                    tool=gitops.GitOpsTool.FLUX,
                    kind=kind,
                    name=name,
                    namespace=labels.get(f"{group}/namespace") or None,
                )
    tracking = annotations.get(ARGOCD_TRACKING_ANNOTATION, "")
    app, separator, _ = tracking.partition(":")
    if separator and app:
        # An app in another namespace than Argo CD's own is written `<namespace>_<app>` (apps in any namespace).
        namespace, underscore, name = app.partition("_")
        if underscore and name:
            return gitops.GitOpsOwner(
                tool=gitops.GitOpsTool.ARGO_CD, kind="Application", name=name, namespace=namespace
            )
        return gitops.GitOpsOwner(tool=gitops.GitOpsTool.ARGO_CD, kind="Application", name=app)
    for key in (ARGOCD_INSTANCE_LABEL, *extra_argocd_labels):
        if labels.get(key):
            return gitops.GitOpsOwner(tool=gitops.GitOpsTool.ARGO_CD, kind="Application", name=labels[key])
    return None


def recommendation(
    owner: gitops.GitOpsOwner, *, field: str, value: str | None, container: str | None, hpa: bool = False
) -> str:
    """What the notice tells the humans: who will revert the change and what to commit instead.

    `field` is the manifest field the action changes (its traits' `source_field`); with `hpa` a scale-out
    raised the HorizontalPodAutoscaler's minReplicas instead of the workload's replicas.
    """
    if hpa:
        field = "the HorizontalPodAutoscaler's spec.minReplicas"
    where = f" for container {container!r}" if container else ""
    if value is None or "restartedAt" in field:
        what = f"it reverts {field}{where}; do this through {owner.title} instead"
    else:
        what = f"commit {field}={value}{where} to its source"
    return f"{owner.title} manages this workload and will revert a change made here on its next sync: {what}"
