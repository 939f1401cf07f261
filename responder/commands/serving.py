"""`oom-responder serve`: run the webhook receiver and the work queue until SIGTERM.

This module wires parts together and owns the process lifecycle; it decides nothing about alerts.
`build_pipeline` wires the real pipeline (Kubernetes client, state, notifiers, Processor). On a machine with no
cluster at all, in dry-run, `build_handler` plans from labels only and logs what it would do, and /readyz says
what it cannot do without a cluster.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import prometheus_client

    from responder import logs as logs_mod
    from responder import metrics as metrics_mod
    from responder.engine import notifying as notifying_mod
    from responder.engine import queueing
    from responder.kube import client as client_mod
    from responder.kube import informers as informers_mod
    from responder.logic import deduplicating
    from responder.models import settings as settings_mod
    from responder.models import targets as targets_mod
    from responder.models import work
    from responder.web import app as app_mod

__all__ = ["Cleanup", "add_arguments", "build_handler", "build_pipeline", "run", "serve"]

logger = logging.getLogger(__name__)

Cleanup = Callable[[], Awaitable[None]]


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument(
        "--config", metavar="FILE", help="config file (default: $OOM_RESPONDER_CONFIG, else defaults)"
    )
    parser.add_argument("--host", help="listen address (overrides server.host)")
    parser.add_argument("--port", type=int, help="listen port, 0 for a free one (overrides server.port)")
    parser.add_argument("--log-format", choices=("json", "text"), help="overrides logging.format")


_DECISIONS_MESSAGE = "decisions (planned from labels only; no cluster)"


def _decision_lines() -> logs_mod.GroupedBatch:
    """The label-only decisions, logged as one INFO line per batch of up to `logs.MAX_ITEMS` alerts.

    A line per alert was half of the CPU the service spent on an alert (formatting and writing a record
    costs more than planning from labels). A batch costs one record for up to a hundred decisions, grouped
    by what was decided (alert name, playbook, action, decision, mode), each group listing its occurrence ids
    with their targets. Each decision is also logged on its own line at DEBUG, with its queue key.
    """
    from responder import logs  # noqa: PLC0415

    return logs.GroupedBatch(logger, _DECISIONS_MESSAGE, field="decisions", members="targets")


_DEBUG_DECISION_MESSAGE = "decision (planned from labels only; no cluster)"


def build_handler(
    settings: settings_mod.Settings, metrics: metrics_mod.Metrics
) -> tuple[queueing.Handler, app_mod.Readiness, Cleanup]:
    """The label-only handler, for a machine without any cluster (dry-run only).

    It logs, per item, the playbook, target and action it would take (batched, see `_decision_lines`), and
    counts them in `oom_responder_actions_total{result="would_do"}` (or `skipped`). It never writes.
    """
    from responder.commands import planning  # noqa: PLC0415
    from responder.logic import routing  # noqa: PLC0415
    from responder.models import decisions  # noqa: PLC0415

    lines = _decision_lines()
    mode = settings.mode.value
    names = settings.alerts
    missing_labels = decisions.Reason.MISSING_LABELS.value
    # What a playbook would do depends on the target's kind alone, not on the alert: planned once per
    # (playbook, kind), with the counters it increments and the fields its decisions share in the log,
    # instead of once per alert.
    planned: dict[
        tuple[str, str, targets_mod.WorkloadKind | None],
        tuple[list[prometheus_client.Counter], dict[str, Any]],
    ] = {}

    def plan_for(
        alertname: str, playbook: settings_mod.Playbook | None, kind: targets_mod.WorkloadKind | None
    ) -> tuple[list[prometheus_client.Counter], dict[str, Any]]:
        counters: list[prometheus_client.Counter] = []
        if playbook is None:
            shared: dict[str, Any] = {"alertname": alertname, "decision": "resolved: would notify only"}
        elif kind is None:
            shared = {
                "alertname": alertname,
                "playbook": playbook.name,
                "action": None,
                "decision": missing_labels,
                "mode": mode,
            }
        else:
            plan = planning.plan_for_kind(playbook, kind=kind, config=settings)
            # Counted as the full pipeline counts dry-run decisions, so the dashboard's "would do" panel and
            # alerts on oom_responder_actions_total work without a cluster too.
            result = "would_do" if plan.reason is None else "skipped"
            counters = [
                metrics.actions.labels(playbook.name, action, result)
                for action in ([plan.action, *plan.additional] if plan.action else [])
            ]
            shared = {
                "alertname": alertname,
                "playbook": playbook.name,
                "action": plan.action,
                "decision": plan.reason or "would_do",
                "mode": mode,
            }
            # Only when there is something to say: most plans have neither.
            if plan.fallbacks:
                shared["fallbacks"] = list(plan.fallbacks)
            if plan.additional:
                shared["additional"] = list(plan.additional)
        planned[(alertname, playbook.name if playbook else "", kind)] = (counters, shared)
        return counters, shared

    async def handle(item: work.WorkItem) -> None:
        event = item.event
        playbook = item.playbook
        target = routing.target_from_labels(event, settings=names)
        # A resolved alert is only announced (no playbook); without a target its labels say too little.
        kind = target.kind if target is not None and playbook is not None else None
        group = (event.alertname, playbook.name if playbook else "", kind)
        counters, shared = planned.get(group) or plan_for(event.alertname, playbook, kind)
        for counter in counters:
            counter.inc()
        target_key = target.key if target is not None else None
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                _DEBUG_DECISION_MESSAGE,
                extra={
                    "occurrence_id": event.occurrence_id,
                    "queue_key": item.queue_key,
                    "target": target_key,
                    **shared,
                },
            )
        lines.add_member(group, shared=shared, key=event.occurrence_id, value=target_key)

    def readiness() -> tuple[bool, dict[str, Any]]:
        return True, {
            "mode": settings.mode.value,
            "cluster": "unavailable: no kubeconfig and not in a cluster; planning from labels only, "
            "no live checks, no guardrail state, no writes",
        }

    async def cleanup() -> None:
        lines.flush()

    return handle, readiness, cleanup


async def build_pipeline(
    settings: settings_mod.Settings,
    metrics: metrics_mod.Metrics,
    *,
    deduplicator: deduplicating.Deduplicator,
    truncations: notifying_mod.Truncations | None = None,
) -> tuple[queueing.Handler, app_mod.Readiness, Cleanup]:
    """The real pipeline: Kubernetes client, cluster-wide state, notifiers and the Processor.

    `truncations` is shared with the webhook receiver: the next notice tells what Alertmanager left out.

    Raises `connecting.NoCluster` when there are no credentials, `client.UnusableCredentials` when they are
    configured but broken, and `config.SecretError` when a notifier's secret is missing. An unreachable API
    server is not an error here: /readyz reports it until it answers, so a
    replica started during a control-plane outage joins as soon as the API server is back.
    """
    from responder.commands import connecting  # noqa: PLC0415
    from responder.engine import notifying  # noqa: PLC0415
    from responder.kube import errors, threads  # noqa: PLC0415
    from responder.logic import deduplicating  # noqa: PLC0415

    kube = await connecting.connect(settings, metrics=metrics)
    try:
        notifiers = notifying.Notifiers.from_settings(
            settings.notifiers,
            metrics=metrics,
            threads=threads.ThreadKeeper(kube, conflict_attempts=settings.kubernetes.conflict_attempts),
            truncations=truncations,
        )
    except BaseException:
        await kube.close()
        raise
    cache = _start_cache(kube, settings)
    processor = connecting.processor_on(
        kube,
        settings,
        metrics=metrics,
        notifiers=notifiers,
        retry_on_next_delivery=lambda item: deduplicator.forget(deduplicating.occurrence_key(item.event)),
    )
    await notifiers.start()
    # After the mitigation (runbook Step 6): verdicts, restart schedules and rollouts left by a replica that
    # died, all kept in ConfigMaps and claimed by compare-and-swap; the poller holds no state of its own.
    processor.following.start()

    cluster: dict[str, Any] = {"cluster": "not checked yet"}
    reachable = asyncio.Event()

    async def probe() -> None:
        # Readiness follows the API server: a replica that cannot reach it cannot act, so Alertmanager's
        # retries should go to one that can.
        while True:
            try:
                version = await kube.request("GET", "/version", verb="get")
                cluster["cluster"] = f"reachable: {version.get('gitVersion', 'unknown version')}"
                reachable.set()
            except errors.KubeError as e:
                cluster["cluster"] = f"unreachable: {e}"
                reachable.clear()
            await asyncio.sleep(_PROBE_SECONDS if reachable.is_set() else 2.0)

    prober = asyncio.create_task(probe(), name="cluster-probe")

    def readiness() -> tuple[bool, dict[str, Any]]:
        details: dict[str, Any] = {"mode": settings.mode.value, **cluster}
        if cache is not None:
            status = cache.status()
            synced = sum(1 for informer in status.values() if informer["synced"])
            # Not a readiness condition: reads fall back to the API server until an informer has synced.
            details["watch_cache"] = f"{synced} of {len(status)} informers synced, {len(cache)} objects"
        return reachable.is_set(), details

    async def cleanup() -> None:
        prober.cancel()
        await asyncio.gather(prober, return_exceptions=True)
        await processor.close(settings.server.shutdown_timeout_seconds)
        await notifiers.close(settings.server.shutdown_timeout_seconds)
        if cache is not None:
            await cache.close()
        await kube.close()

    return processor.handle, readiness, cleanup


_PROBE_SECONDS = 15.0


def _start_cache(kube: client_mod.Kube, settings: settings_mod.Settings) -> informers_mod.Informers | None:
    """The watch-fed cache reads are answered from, when configured and the transport can stream."""
    from responder.kube import client, informers  # noqa: PLC0415

    if not settings.kubernetes.watch_cache:
        return None
    if not isinstance(kube.transport, client.AiohttpTransport):
        logger.warning(
            "watch cache off: this kubeconfig's plugin transport cannot stream; every read is a GET"
        )
        return None
    cache = informers.Informers(kube, namespaces=settings.kubernetes.namespaces)
    cache.start()
    kube.informers = cache
    return cache


async def serve(
    settings: settings_mod.Settings,
    *,
    stop: asyncio.Event | None = None,
    host: str | None = None,
    port: int | None = None,
) -> int:
    """Serve until SIGTERM/SIGINT (or `stop` is set), then shut down in order. Returns the exit code."""
    from aiohttp import web  # noqa: PLC0415

    from responder import metrics as metrics_mod  # noqa: PLC0415
    from responder.logic import deduplicating  # noqa: PLC0415
    from responder.web import app as app_mod  # noqa: PLC0415
    from responder.web import auth, connections  # noqa: PLC0415

    metrics = metrics_mod.Metrics(process_metrics=True)
    try:
        authenticator = auth.Authenticator.from_settings(settings.auth)
    except auth.AuthError as e:
        logger.error("cannot start: %s", e)
        print(f"error: {e}", file=sys.stderr)
        return 2
    from responder import config  # noqa: PLC0415
    from responder.commands import connecting  # noqa: PLC0415
    from responder.engine import notifying  # noqa: PLC0415
    from responder.kube import credentials  # noqa: PLC0415

    deduplicator = deduplicating.Deduplicator.from_settings(settings.dedup)
    truncations: notifying.Truncations | None = notifying.Truncations()
    try:
        handler, readiness, cleanup = await build_pipeline(
            settings, metrics, deduplicator=deduplicator, truncations=truncations
        )
    except credentials.UnusableCredentials as e:
        # Not "no cluster": a dry-run that planned from labels here would claim to be ready while the
        # configuration it was given is broken. Say what is broken and stop (also in dry-run).
        print(f"error: kubernetes credentials are configured but unusable: {e}", file=sys.stderr)
        return 2
    except connecting.NoCluster as e:
        if settings.mode.value != "dry-run":
            print(f"error: mode enforce needs a cluster, and none is configured: {e}", file=sys.stderr)
            return 2
        logger.warning("no cluster configured: planning from labels only", extra={"error": str(e)})
        handler, readiness, cleanup = build_handler(settings, metrics)
        truncations = None  # no notifiers without a cluster: the log line and the metric say it
    except config.SecretError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        server = settings.server
        guard = connections.ConnectionGuard(
            max_connections=connections.bounded_by_file_limit(server.max_connections),
            header_timeout_seconds=server.header_timeout_seconds,
        )
        app = app_mod.make_app(
            settings=settings,
            metrics=metrics,
            handler=handler,
            readiness=readiness,
            authenticator=authenticator,
            deduplicator=deduplicator,
            connection_guard=guard,
            on_truncated=truncations.note if truncations is not None else None,
        )
        # begin_shutdown() has drained the queue before cleanup; this only bounds in-flight HTTP handlers.
        runner = web.AppRunner(
            app, shutdown_timeout=5.0, access_log=None, keepalive_timeout=server.idle_timeout_seconds
        )
        await runner.setup()
        try:
            site = connections.GuardedSite(
                runner, host or server.host, server.port if port is None else port, guard=guard
            )
            # Everything long-lived exists now (imported modules, the Kubernetes client, the app). Move it out of the collector's reach: otherwise every full
            # collection walks it again, tens of ms of pause on the event loop, i.e. on the latency tail of
            # webhook acknowledgements. Collect first so that start-up garbage is freed, not frozen.
            gc.collect()
            gc.freeze()
            try:
                await site.start()
            except OSError as e:
                # A busy port or an address this host does not have: one line, not a traceback.
                where = f"{host or settings.server.host}:{settings.server.port if port is None else port}"
                print(f"error: cannot listen on {where}: {e.strerror or e}", file=sys.stderr)
                return 2
            addresses = [f"{a[0]}:{a[1]}" for a in runner.addresses if isinstance(a, tuple)]
            logger.info(
                "listening",
                extra={"addresses": addresses, "mode": settings.mode.value, "auth": settings.auth.mode},
            )
            stop = stop or asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stop.set)
            await stop.wait()
            logger.info("shutting down: /readyz fails and new webhooks get 503 while the queue drains")
            await app_mod.begin_shutdown(app)
        finally:
            await runner.cleanup()
    finally:
        await cleanup()
    logger.info("stopped")
    return 0


def run(args: argparse.Namespace) -> int:
    from responder import config, logs  # noqa: PLC0415

    settings = config.load_for_command(args.config)
    if settings is None:
        return 2
    logs.configure(format=args.log_format or settings.logging.format, level=settings.logging.level)
    if not (args.config or os.environ.get(config.CONFIG_ENV)):
        logger.warning("no config file given (--config or $%s): using the defaults", config.CONFIG_ENV)
    return asyncio.run(serve(settings, host=args.host, port=args.port))
