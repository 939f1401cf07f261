"""Connecting a command to the cluster: the Kubernetes client, the guardrail state and the `Processor`.

Stage: command wiring. `serve` and `plan` build the same pipeline on the same client; this is the one place
that does it. Commands import this module only when they need a cluster (it imports the engine and the
Kubernetes edge), so a labels-only run starts without them.
"""

from __future__ import annotations

from collections.abc import Callable

from responder import metrics as metrics_mod
from responder.engine import investigating, measuring, processing
from responder.kube import client, state
from responder.models import settings, work

__all__ = ["NoCluster", "connect", "processor_on"]


class NoCluster(Exception):
    """No cluster credentials at all (no kubeconfig, not in a pod)."""


async def connect(config: settings.Settings, *, metrics: metrics_mod.Metrics) -> client.Kube:
    """The client for the configured cluster. Raises `NoCluster` when there are no credentials at all, and
    `client.UnusableCredentials` when they are configured but broken."""
    try:
        return await client.Kube.connect(settings=config.kubernetes, metrics=metrics)
    except client.UnusableCredentials:
        raise  # configured but broken: never "no cluster" (that would plan from labels and claim ready)
    except client.NoCredentials as e:
        raise NoCluster(str(e)) from e


def processor_on(
    kube: client.Kube,
    config: settings.Settings,
    *,
    metrics: metrics_mod.Metrics,
    notifiers: processing.Notifier,
    retry_on_next_delivery: Callable[[work.WorkItem], None] | None = None,
) -> processing.Processor:
    """The pipeline handler on `kube`, with the guardrail state in its configured namespace, and the memory
    analysis when `prometheus.url` is set (raises `config.SecretError` when its token cannot be read)."""
    own_namespace = state.own_namespace(config)
    investigator = None
    if config.prometheus.url:
        from responder import config as config_mod  # noqa: PLC0415 - secrets are read when the command runs

        investigator = investigating.Investigator(
            config.prometheus,
            authorization=config_mod.prometheus_authorization(config.prometheus),
            metrics=metrics,
        )
    return processing.Processor(
        settings=config,
        metrics=metrics,
        kube=kube,
        notifiers=notifiers,
        state_store=state.StateStore(
            kube, namespace=state.state_namespace(config, own_namespace=own_namespace), settings=config
        ),
        own_namespace=own_namespace,
        retry_on_next_delivery=retry_on_next_delivery,
        memory=_memory(config, metrics),
        investigator=investigator,
    )


def _memory(config: settings.Settings, metrics: metrics_mod.Metrics) -> measuring.PrometheusMemory | None:
    """Verdicts read memory from Prometheus when one is configured (else from the pods' state alone)."""
    if config.prometheus.url is None:
        return None
    from responder import config as config_mod  # noqa: PLC0415 - secrets are read when the command runs

    return measuring.PrometheusMemory(
        config.prometheus,
        authorization=config_mod.prometheus_authorization(config.prometheus),
        metrics=metrics,
    )
