"""Finding the GitOps controller that owns a workload from the marks the controllers write.

Aspects covered: Argo CD annotation tracking (an app in Argo CD's namespace, and `<namespace>_<app>` for apps in
any namespace) and its dedicated instance label; Helm's `app.kubernetes.io/instance` proves nothing unless
configured; Flux Kustomizations and HelmReleases with their namespace; Flux's `reconcile: disabled` opt-out;
a workload without marks; the recommendation names the controller object and the value to commit (the HPA's
field for a scale-out through an HPA; for a restart, to restart through the controller).
"""

from __future__ import annotations

import pytest

from responder.logic import tracking
from responder.models import gitops


@pytest.mark.parametrize(
    ("labels", "annotations", "expected"),
    [
        pytest.param(
            {},
            {"argocd.argoproj.io/tracking-id": "shop-api:apps/Deployment:shop/api"},
            gitops.GitOpsOwner(gitops.GitOpsTool.ARGO_CD, "Application", "shop-api"),
            id="argocd-annotation",
        ),
        pytest.param(
            {},
            {"argocd.argoproj.io/tracking-id": "team-a_shop-api:apps/Deployment:shop/api"},
            gitops.GitOpsOwner(gitops.GitOpsTool.ARGO_CD, "Application", "shop-api", "team-a"),
            id="argocd-app-in-any-namespace",
        ),
        pytest.param(
            {"argocd.argoproj.io/instance": "shop-api"},
            {},
            gitops.GitOpsOwner(gitops.GitOpsTool.ARGO_CD, "Application", "shop-api"),
            id="argocd-label",
        ),
        pytest.param(
            {
                "kustomize.toolkit.fluxcd.io/name": "apps",
                "kustomize.toolkit.fluxcd.io/namespace": "flux-system",
            },
            {},
            gitops.GitOpsOwner(gitops.GitOpsTool.FLUX, "Kustomization", "apps", "flux-system"),
            id="flux-kustomization",
        ),
        pytest.param(
            {"helm.toolkit.fluxcd.io/name": "api", "helm.toolkit.fluxcd.io/namespace": "shop"},
            {},
            gitops.GitOpsOwner(gitops.GitOpsTool.FLUX, "HelmRelease", "api", "shop"),
            id="flux-helmrelease",
        ),
        pytest.param(
            {"kustomize.toolkit.fluxcd.io/name": "apps"},
            {"kustomize.toolkit.fluxcd.io/reconcile": "disabled"},
            None,
            id="flux-reconcile-disabled",
        ),
        pytest.param(
            {"app.kubernetes.io/instance": "api"}, {}, None, id="helm-instance-label-proves-nothing"
        ),
        pytest.param({"app": "api"}, {"deployment.kubernetes.io/revision": "3"}, None, id="no-marks"),
        pytest.param({}, {"argocd.argoproj.io/tracking-id": "garbage"}, None, id="malformed-tracking-id"),
    ],
)
def test_the_owner_is_read_from_the_controllers_own_marks(
    labels: dict[str, str], annotations: dict[str, str], expected: gitops.GitOpsOwner | None
) -> None:
    assert tracking.find_owner(labels=labels, annotations=annotations) == expected


def test_argo_cds_old_default_label_is_read_only_when_configured() -> None:
    labels = {"app.kubernetes.io/instance": "shop-api"}
    owner = tracking.find_owner(
        labels=labels, annotations=None, extra_argocd_labels=["app.kubernetes.io/instance"]
    )
    assert owner == gitops.GitOpsOwner(gitops.GitOpsTool.ARGO_CD, "Application", "shop-api")


def test_the_recommendation_names_the_owner_and_the_value_to_commit() -> None:
    owner = gitops.GitOpsOwner(gitops.GitOpsTool.ARGO_CD, "Application", "shop-api")
    text = tracking.recommendation(owner, field="resources.limits.memory", value="640Mi", container="api")
    assert text.startswith("Argo CD Application shop-api manages this workload and will revert")
    assert text.endswith("commit resources.limits.memory=640Mi for container 'api' to its source")
    flux = gitops.GitOpsOwner(gitops.GitOpsTool.FLUX, "HelmRelease", "api", "shop")
    scaled = tracking.recommendation(flux, field="spec.replicas", value="3", container=None, hpa=True)
    assert scaled.startswith("Flux HelmRelease shop/api")
    assert scaled.endswith("commit the HorizontalPodAutoscaler's spec.minReplicas=3 to its source")
    restarted = tracking.recommendation(
        owner,
        field="the pod template's kubectl.kubernetes.io/restartedAt annotation",
        value="2026-03-01T12:00:00Z",
        container=None,
    )
    assert restarted.endswith("do this through Argo CD Application shop-api instead")
