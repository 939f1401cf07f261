"""`oom-responder serve`, run as the README says, as a separate process.

Covers: with the example config and a token in the environment it starts, answers a webhook with 202, explains
on /readyz that it plans from labels only, logs one JSON object per webhook and the decisions in batches, and exits 0
on SIGTERM after draining; label-only decisions are written in batches (full, soon after the first, or at
shutdown) listing every occurrence once; without the token it refuses to start (exit 2) naming what to set; a
kubeconfig that is configured but broken (malformed, a missing key file, a failing exec plugin) stops it with
one line naming what is broken (exit 2), also in dry-run: never the label-only fallback that claims to be ready;
`--version`; a busy port or an unknown bind address is one `error:` line and exit 2, not a traceback.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import os
import signal
import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import responder
from responder import logs
from responder import metrics as metrics_mod
from responder.commands import serving
from responder.logic import normalizing, routing
from responder.models import alerts, work
from responder.models import settings as settings_mod
from tests.unit import payloads

ROOT = Path(__file__).resolve().parents[3]


async def _start(env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        "oom-responder",
        "serve",
        "--config",
        "config/responder.yaml",
        "--port",
        "0",
        "--host",
        "127.0.0.1",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _read_logs_until(
    process: asyncio.subprocess.Process, message: str, logs: list[dict[str, Any]]
) -> dict[str, Any]:
    assert process.stderr is not None
    while True:
        line = await asyncio.wait_for(process.stderr.readline(), timeout=60)
        assert line, f"the service exited before logging {message!r}; logs: {logs}"
        record: dict[str, Any] = json.loads(line)
        logs.append(record)
        if record["message"] == message:
            return record


async def test_serves_the_example_config_and_answers_a_webhook() -> None:
    env = {**os.environ, "OOM_RESPONDER_WEBHOOK_TOKEN": "dev-token"}
    process = await _start(env)
    logs: list[dict[str, Any]] = []
    try:
        listening = await _read_logs_until(process, "listening", logs)
        [address] = listening["addresses"]
        url = f"http://{address}"
        async with aiohttp.ClientSession() as session:
            body = payloads.payload(payloads.alert("OOMKilled", workload="api", workload_kind="Deployment"))
            async with session.post(
                f"{url}/webhook", json=body, headers={"Authorization": "Bearer dev-token"}
            ) as response:
                assert response.status == 202
                assert await response.json() == {
                    "accepted": 1,
                    "duplicates": 0,
                    "resolved": 0,
                    "ignored": 0,
                    "refused": 0,
                }
            async with session.post(f"{url}/webhook", json=body) as response:
                assert response.status == 401
            async with session.get(f"{url}/readyz") as response:
                ready = await response.json()
                assert response.status == 200
                assert ready["cluster"].startswith("unavailable: no kubeconfig and not in a cluster")
                assert "planning from labels only" in ready["cluster"]
                assert ready["mode"] == "dry-run"
        batch = await _read_logs_until(process, "decisions (planned from labels only; no cluster)", logs)
        assert batch["count"] == 1
        [decision] = batch["decisions"]
        assert decision["targets"] == {"a1b2c3d4e5f60718@2024-05-01T10:00:00+00:00": "shop/Deployment/api"}
        assert (decision["alertname"], decision["action"], decision["decision"], decision["mode"]) == (
            "OOMKilled",
            "raise_memory",
            "would_do",
            "dry-run",
        )
        # The receiver logs the webhook once, with its counts, in a batch; decisions are batched too, never a
        # line per alert.
        if not any(record["message"] == "webhooks accepted" for record in logs):
            await _read_logs_until(process, "webhooks accepted", logs)
        [received] = [record for record in logs if record["message"] == "webhooks accepted"]
        [webhook] = received["webhooks"]
        assert (webhook["accepted"], webhook["duplicates"], webhook["ignored"]) == (1, 0, 0)
        assert not any(record["message"] in ("alert queued", "webhook accepted") for record in logs)
        process.send_signal(signal.SIGTERM)
        await _read_logs_until(process, "stopped", logs)
        assert await asyncio.wait_for(process.wait(), timeout=60) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_refuses_to_start_without_the_webhook_token() -> None:
    env = {key: value for key, value in os.environ.items() if key != "OOM_RESPONDER_WEBHOOK_TOKEN"}
    process = await _start(env)
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 2
    assert "OOM_RESPONDER_WEBHOOK_TOKEN" in stderr.decode()


def _items(count: int) -> list[work.WorkItem]:
    settings = settings_mod.Settings()
    body = payloads.payload(*(payloads.alert(fingerprint=f"{i:016x}", pod=f"api-{i}") for i in range(count)))
    parsed = alerts.WebhookPayload.model_validate(body)
    items = []
    for alert in parsed.alerts:
        event = normalizing.normalize(alert, payload=parsed, settings=settings)
        assert event is not None
        items.append(
            work.WorkItem(
                event=event,
                playbook=routing.route(event, settings.playbooks),
                received_at=datetime.datetime(2024, 5, 1, tzinfo=datetime.UTC),
                queue_key=routing.queue_key(event, settings=settings.alerts),
            )
        )
    return items


async def test_label_only_decisions_are_logged_in_batches(caplog: pytest.LogCaptureFixture) -> None:
    """A full batch is written at once, the rest at shutdown; every decision is listed once, in order."""
    handle, _, cleanup = serving.build_handler(settings_mod.Settings(), metrics_mod.Metrics())
    items = _items(logs.MAX_ITEMS + 3)
    caplog.set_level(logging.INFO, logger="responder.commands.serving")
    for item in items:
        await handle(item)
    assert [r.count for r in caplog.records] == [logs.MAX_ITEMS]  # type: ignore[attr-defined]
    await cleanup()
    batches = [
        r for r in caplog.records if r.getMessage() == "decisions (planned from labels only; no cluster)"
    ]
    listed = [
        (occurrence_id, target)
        for r in batches
        for group in r.decisions  # type: ignore[attr-defined]
        for occurrence_id, target in group["targets"].items()
    ]
    assert listed == [(item.event.occurrence_id, f"shop/Pod/{item.event.pod}") for item in items]
    assert [r.count for r in batches] == [logs.MAX_ITEMS, 3]  # type: ignore[attr-defined]


async def test_label_only_decisions_are_grouped_by_what_was_decided_and_each_is_alone_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = settings_mod.Settings()
    handle, _, cleanup = serving.build_handler(settings, metrics_mod.Metrics())
    body = payloads.payload(
        payloads.alert("OOMKilled", fingerprint="f1", pod="api-1"),
        payloads.alert("PodMemoryHigh", fingerprint="f2", pod="api-2"),
        payloads.alert("OOMKilled", fingerprint="f3", pod="api-3"),
        payloads.alert("OOMKilled", fingerprint="f4", pod="api-4", status="resolved"),
        payloads.alert("OOMKilled", fingerprint="f5", namespace=None),
    )
    parsed = alerts.WebhookPayload.model_validate(body)
    caplog.set_level(logging.DEBUG, logger="responder.commands.serving")
    for alert in parsed.alerts:
        event = normalizing.normalize(alert, payload=parsed, settings=settings)
        assert event is not None
        resolved = event.status is alerts.AlertStatus.RESOLVED
        await handle(
            work.WorkItem(
                event=event,
                playbook=None if resolved else routing.route(event, settings.playbooks),
                received_at=datetime.datetime(2024, 5, 1, tzinfo=datetime.UTC),
                queue_key=routing.queue_key(event, settings=settings.alerts),
            )
        )
    await cleanup()
    debug = [r for r in caplog.records if r.levelno == logging.DEBUG]
    assert [r.occurrence_id for r in debug] == [  # type: ignore[attr-defined]
        f"f{n}@2024-05-01T10:00:00+00:00" for n in range(1, 6)
    ]
    [line] = [r for r in caplog.records if r.levelno == logging.INFO]
    assert line.count == 5  # type: ignore[attr-defined]
    groups = {(g["alertname"], g["decision"]): g for g in line.decisions}  # type: ignore[attr-defined]
    oom = groups[("OOMKilled", "would_do")]
    assert (oom["playbook"], oom["action"]) == ("oom-raise-memory", "raise_memory")
    assert oom["targets"] == {
        "f1@2024-05-01T10:00:00+00:00": "shop/Pod/api-1",
        "f3@2024-05-01T10:00:00+00:00": "shop/Pod/api-3",
    }
    high = groups[("PodMemoryHigh", "would_do")]
    assert high["action"] == "scale_out" and high["fallbacks"] == ["evict_pod"]
    assert groups[("OOMKilled", "resolved: would notify only")]["targets"] == {
        "f4@2024-05-01T10:00:00+00:00": "shop/Pod/api-4"
    }
    assert groups[("OOMKilled", "missing_labels")]["targets"] == {"f5@2024-05-01T10:00:00+00:00": None}


@pytest.mark.parametrize(
    ("kubeconfig", "message"),
    [
        pytest.param("current-context: x\ncontexts: 5\n", "contexts must be a list", id="contexts-5"),
        pytest.param(
            "current-context: main\n"
            "contexts: [{name: main, context: {cluster: c, user: u}}]\n"
            "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
            "users: [{name: u, user: {client-certificate: gone.crt, client-key: gone.key}}]\n",
            "gone.crt",
            id="missing-key-file",
        ),
        pytest.param(
            "current-context: main\n"
            "contexts: [{name: main, context: {cluster: c, user: u}}]\n"
            "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
            "users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1beta1, "
            "command: 'false'}}}]\n",
            "plugin failed",
            id="failing-exec-plugin",
        ),
    ],
)
async def test_a_broken_kubeconfig_in_dry_run_is_named_and_not_served_as_label_only(
    tmp_path: Path, kubeconfig: str, message: str
) -> None:
    path = tmp_path / "config"
    path.write_text(kubeconfig)
    env = {
        **{k: v for k, v in os.environ.items() if k != "KUBERNETES_SERVICE_HOST"},
        "OOM_RESPONDER_WEBHOOK_TOKEN": "dev-token",
        "KUBECONFIG": str(path),
    }
    process = await _start(env)
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    text = stderr.decode()
    assert process.returncode == 2, text
    [line] = [line for line in text.splitlines() if line.startswith("error:")]
    assert "kubernetes credentials are configured but unusable" in line
    assert message in line
    assert str(path) in line
    assert "Traceback" not in text
    assert "planning from labels only" not in text


async def test_version_prints_the_distribution_version() -> None:
    process = await asyncio.create_subprocess_exec(
        "oom-responder", "--version", cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0
    assert stdout.decode().strip() == f"oom-responder {responder.__version__}"


@pytest.mark.parametrize("where", ["busy-port", "unknown-host"])
async def test_a_busy_port_or_a_bad_address_is_one_line_and_exit_2(where: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        host = "127.0.0.1" if where == "busy-port" else "no-such-host.invalid"
        process = await asyncio.create_subprocess_exec(
            "oom-responder", "serve", "--config", "config/responder.yaml",
            "--host", host, "--port", str(port),
            cwd=ROOT,
            env={**os.environ, "OOM_RESPONDER_WEBHOOK_TOKEN": "dev-token", "KUBECONFIG": "/nonexistent"},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    text = stderr.decode()
    assert process.returncode == 2, text
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert errors == [errors[0]] and f"cannot listen on {host}:{port}" in errors[0], text
    assert "Traceback" not in text


async def test_the_label_only_dry_run_counts_its_decisions_in_actions_total() -> None:
    from prometheus_client import CollectorRegistry  # noqa: PLC0415

    from responder import config as config_mod  # noqa: PLC0415
    from responder import metrics as metrics_mod  # noqa: PLC0415
    from responder.commands import serving  # noqa: PLC0415
    from responder.logic import normalizing, routing  # noqa: PLC0415
    from responder.models import alerts, work  # noqa: PLC0415

    config = config_mod.load_settings(ROOT / "config" / "responder.yaml")
    metrics = metrics_mod.Metrics(CollectorRegistry())
    handle, ready, cleanup = serving.build_handler(config, metrics)
    body = alerts.WebhookPayload.model_validate(
        payloads.payload(payloads.alert("OOMKilled", workload="api", workload_kind="Deployment"))
    )
    event = normalizing.normalize(body.alerts[0], payload=body, settings=config)
    assert event is not None
    playbook = routing.route(event, config.playbooks)
    assert playbook is not None
    await handle(
        work.WorkItem(
            event=event,
            playbook=playbook,
            received_at=datetime.datetime.now(datetime.UTC),
            queue_key="shop/api",
        )
    )
    await cleanup()
    counted = metrics.registry.get_sample_value(
        "oom_responder_actions_total",
        {"playbook": playbook.name, "action": "raise_memory", "result": "would_do"},
    )
    assert counted == 1.0
    assert ready()[0] is True
