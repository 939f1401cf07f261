"""The alert path on real parts, started on loopback around the test control plane (test support only).

What runs, each as its own process with a log file under the stack's work dir:

* kube-state-metrics (built from its Go module by ``scripts/test-assets``) watching the control plane's pods:
  restarts, last terminated reason, memory limits.
* kwok (already part of the control plane) serving the fake kubelets' resource metrics
  (``container_memory_working_set_bytes``) per node, driven by pod annotations (tests/kubeplane/kwok-metrics.yaml).
* Debian's Prometheus scraping both and evaluating a test-only copy of
  ``config/alert-rules.yaml`` whose expressions are the shipped ones with every duration divided by
  ``TIME_SCALE`` (``for:``, range windows and the trend rule's horizon), so an hour of rule time passes in a minute;
  range windows stay at least ``MIN_WINDOW_SECONDS`` long. History a scenario needs from before the stack started
  (a workload's previous pod) is backfilled with ``tests.promstack`` before Prometheus starts.
* Debian's Alertmanager with the route, matchers, grouping and inhibition of ``config/alertmanager-example.yaml``
  (only the group timers shortened), posting to the service through a recording tap.
* ``oom-responder serve`` in enforce mode against the control plane, announcing to the Slack stand-in.

The tap (a pass-through proxy in front of the service) and the Slack stand-in run in one background thread with
its own event loop, so tests on their own loops can read what they recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import yaml
from aiohttp import web

from tests.promstack import stack as promstack
from tests.slackstub import server as slack_server

__all__ = [
    "ALERTMANAGER_BINARY",
    "PROMETHEUS_BINARY",
    "SLACK_CHANNEL",
    "SLACK_TOKEN",
    "TIME_SCALE",
    "WEBHOOK_TOKEN",
    "Stack",
    "StackError",
    "shorten_rules",
]

ALERTMANAGER_BINARY = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"
PROMETHEUS_BINARY = shutil.which("prometheus") or "/usr/bin/prometheus"

#: Rule time runs this many times faster than wall time: `for: 1h` holds for a minute, `[10m]` spans 10 s.
TIME_SCALE = 60

#: Shortest range window of the copy: a window must span several scrapes even when a busy machine delays a few
#: (OOMKilled's 10 minutes would otherwise be 10 s, which a handful of late scrapes can miss entirely).
MIN_WINDOW_SECONDS = 30

#: Scrape interval (and timeout: Prometheus allows no longer) of the stack's Prometheus.
SCRAPE_SECONDS = 2

WEBHOOK_TOKEN = "e2e-webhook-token"
SLACK_TOKEN = "xoxb-e2e-token"
SLACK_CHANNEL = "C0E2E"

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "config" / "alert-rules.yaml"
ALERTMANAGER_EXAMPLE = REPO / "config" / "alertmanager-example.yaml"

T = TypeVar("T")


class StackError(RuntimeError):
    """A component failed to start; the message carries the tail of its log."""


# --------------------------------------------------------------------------------------------
# The test-only copy of the rules


_DURATION = re.compile(r"^(\d+)([smhd])$")
_RANGE = re.compile(r"\[(\d+[smhd])\]")
_HORIZON = re.compile(r"(predict_linear\((?:[^()]|\([^()]*\))*?\]\s*,\s*)([0-9.\s*]+?)(\s*\))")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _seconds(duration: str) -> int:
    match = _DURATION.match(duration.strip())
    if not match:
        raise ValueError(f"not a simple duration: {duration!r}")
    return int(match.group(1)) * _SECONDS[match.group(2)]


def _scaled(duration: str, scale: int, *, at_least: int = 1) -> str:
    return f"{max(at_least, round(_seconds(duration) / scale))}s"


def shorten_rules(text: str, *, scale: int = TIME_SCALE) -> str:
    """The rules file with every duration divided by ``scale``: ``for:``, ``[range]`` windows (at least
    ``MIN_WINDOW_SECONDS``) and the horizon of ``predict_linear``. Thresholds, label matchers and aggregations
    stay exactly as shipped."""
    doc = yaml.safe_load(text)
    for group in doc["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = _scaled(rule["for"], scale)
            expr = _RANGE.sub(
                lambda m: f"[{_scaled(m.group(1), scale, at_least=MIN_WINDOW_SECONDS)}]", rule["expr"]
            )

            def horizon(match: re.Match[str]) -> str:
                product = 1.0
                for factor in match.group(2).split("*"):
                    product *= float(factor)
                return f"{match.group(1)}{max(1, round(product / scale))}{match.group(3)}"

            rule["expr"] = _HORIZON.sub(horizon, expr)
    return yaml.safe_dump(doc, sort_keys=False)


# --------------------------------------------------------------------------------------------
# Processes


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """Runs in the child before exec: get SIGKILLed if pytest dies without cleaning up (PR_SET_PDEATHSIG)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)


class _Process:
    """One component in its own process group, its output in a log file."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            # prctl must run in the child between fork and exec; no threads run there.
            preexec_fn=_die_with_parent,  # noqa: PLW1509
        )

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def check_alive(self) -> None:
        code = self.popen.poll()
        if code is not None:
            raise StackError(f"{self.name} exited with {code}; log tail:\n{self.log_tail()}")

    def stop(self, *, timeout_seconds: float = 20) -> int | None:
        """SIGTERM the group, SIGKILL it after the timeout; the exit code of the TERM, or None if killed."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            code: int | None = self.popen.wait(timeout=timeout_seconds)
        except subprocess.TimeoutExpired:
            code = None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait()
        with contextlib.suppress(OSError):
            self._log.close()
        return code


# --------------------------------------------------------------------------------------------
# The tap and the Slack stand-in, on a loop of their own


@dataclasses.dataclass
class Delivery:
    """One webhook POST from Alertmanager, as it reached the service, with the service's answer."""

    payload: dict[str, Any]
    status: int


class Tap:
    """A pass-through proxy in front of the service that keeps every Alertmanager payload it forwards."""

    def __init__(self) -> None:
        self.target = ""
        """The service's base URL; set once it listens (Alertmanager retries until then)."""
        self.deliveries: list[Delivery] = []
        self.app = web.Application()
        self.app.router.add_post("/webhook", self._forward)
        self._session: aiohttp.ClientSession | None = None
        self.app.on_cleanup.append(self._close)

    async def _forward(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not self.target:
            return web.json_response({"error": "service not started"}, status=503)
        if self._session is None:
            self._session = aiohttp.ClientSession()
        headers = {
            name: value
            for name, value in request.headers.items()
            if name.lower() in {"authorization", "content-type", "user-agent"}
        }
        async with self._session.post(f"{self.target}/webhook", data=body, headers=headers) as answer:
            text = await answer.text()
            status = answer.status
        with contextlib.suppress(ValueError):
            self.deliveries.append(Delivery(payload=json.loads(body), status=status))
        return web.Response(status=status, text=text, content_type="application/json")

    async def _close(self, app: web.Application) -> None:
        if self._session is not None:
            await self._session.close()


class _LoopThread:
    """An event loop in a daemon thread, for servers that must outlive any one test's loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="e2e-stack-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], *, timeout_seconds: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_seconds)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


# --------------------------------------------------------------------------------------------
# The stack


def _get(url: str, *, timeout_seconds: float = 2) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout_seconds) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


class Stack:
    """kube-state-metrics, Prometheus, Alertmanager, the tap, the Slack stand-in and ``oom-responder serve``.

    Build with the control plane's kubeconfig and kwok address, the kube-state-metrics binary and a work dir,
    then ``start()``; ``stop()`` ends everything (also after a failed start). Public once started:
    ``prometheus_url``, ``alertmanager_url``, ``service_url``, ``tap``, ``slack`` (the stand-in),
    ``service_log`` (the service's JSON log file) and ``startup_seconds``.
    """

    def __init__(
        self,
        *,
        kubeconfig: Path,
        kwok_address: str,
        node_names: list[str],
        kube_state_metrics: Path,
        workdir: Path,
        own_namespace: str,
        namespaces_include: list[str],
        history: Sequence[promstack.Series] = (),
    ) -> None:
        self.kubeconfig = kubeconfig
        self.kwok_address = kwok_address
        self.node_names = node_names
        self.kube_state_metrics = kube_state_metrics
        self.workdir = workdir
        self.own_namespace = own_namespace
        self.namespaces_include = namespaces_include
        self.history = history
        self.procs: list[_Process] = []
        self.prometheus_url = ""
        self.alertmanager_url = ""
        self.service_url = ""
        self.service_log = workdir / "logs" / "oom-responder.log"
        self.startup_seconds = 0.0
        self.tap = Tap()
        self.slack = slack_server.SlackStub(tokens=(SLACK_TOKEN,), channels=(SLACK_CHANNEL,))
        self._loop: _LoopThread | None = None
        self._runners: list[web.AppRunner] = []

    # ---- lifecycle --------------------------------------------------------------------

    def start(self, *, timeout_seconds: float = 120) -> None:
        t0 = time.monotonic()
        try:
            self._start(t0 + timeout_seconds)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0

    def _start(self, deadline: float) -> None:
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        self._loop = _LoopThread()
        tap_runner, tap_url = self._loop.run(_serve(self.tap.app))
        slack_runner, slack_url = self._loop.run(_serve(self.slack.app))
        self._runners += [tap_runner, slack_runner]

        ksm_port = _free_port()
        self._spawn(
            "kube-state-metrics",
            [
                str(self.kube_state_metrics),
                f"--kubeconfig={self.kubeconfig}",
                "--host=127.0.0.1",
                f"--port={ksm_port}",
                "--telemetry-host=127.0.0.1",
                f"--telemetry-port={_free_port()}",
                # The rules read pods only (restarts, last terminated reason, limits).
                "--resources=pods",
            ],
        )
        am_port = _free_port()
        self.alertmanager_url = f"http://127.0.0.1:{am_port}"
        am_config = self.workdir / "alertmanager.yml"
        token_file = self.workdir / "webhook-token"
        token_file.write_text(WEBHOOK_TOKEN + "\n")
        am_config.write_text(yaml.safe_dump(self._alertmanager_config(f"{tap_url}/webhook", token_file)))
        self._spawn(
            "alertmanager",
            [
                ALERTMANAGER_BINARY,
                f"--config.file={am_config}",
                f"--storage.path={self.workdir / 'alertmanager'}",
                f"--web.listen-address=127.0.0.1:{am_port}",
                "--cluster.listen-address=",
                "--log.level=debug",
            ],
        )
        prom_port = _free_port()
        self.prometheus_url = f"http://127.0.0.1:{prom_port}"
        rules = self.workdir / "alert-rules.yaml"
        rules.write_text(shorten_rules(RULES.read_text()))
        prom_config = self.workdir / "prometheus.yml"
        prom_config.write_text(yaml.safe_dump(self._prometheus_config(rules, ksm_port, am_port)))
        if self.history:
            promstack.backfill(self.history, self.workdir / "prometheus")
        self._spawn(
            "prometheus",
            [
                PROMETHEUS_BINARY,
                f"--config.file={prom_config}",
                f"--storage.tsdb.path={self.workdir / 'prometheus'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
                # Firing alerts are re-sent this often; their endsAt is 4 of these ahead, so a resolution that
                # Prometheus fails to send still reaches Alertmanager within seconds.
                "--rules.alert.resend-delay=1s",
                "--log.level=info",
            ],
        )
        self._start_service(slack_url, deadline)
        self.tap.target = self.service_url

        self._wait_until(
            "Alertmanager ready", lambda: _get(f"{self.alertmanager_url}/-/ready")[0] == 200, deadline
        )
        self._wait_until(
            "Prometheus ready", lambda: _get(f"{self.prometheus_url}/-/ready")[0] == 200, deadline
        )
        self._wait_until("every scrape target up", self._targets_up, deadline)
        self._wait_until(
            "the service ready (API server reachable)",
            lambda: _get(f"{self.service_url}/readyz")[0] == 200,
            deadline,
        )

    def stop(self) -> None:
        """Stop every process (the service first, so it drains while Alertmanager is still up) and the loop."""
        procs, self.procs = self.procs, []
        for proc in reversed(procs):
            proc.stop()
        if self._loop is not None:
            self.slack.release()
            for runner in self._runners:
                with contextlib.suppress(Exception):
                    self._loop.run(runner.cleanup())
            self._runners = []
            self._loop.stop()
            self._loop = None

    def check_alive(self) -> None:
        for proc in self.procs:
            proc.check_alive()

    # ---- configuration ----------------------------------------------------------------

    def _alertmanager_config(self, webhook_url: str, token_file: Path) -> dict[str, Any]:
        """config/alertmanager-example.yaml with this stack's receiver address and token, and short timers."""
        config: dict[str, Any] = yaml.safe_load(ALERTMANAGER_EXAMPLE.read_text())
        for route in config["route"].get("routes", []):
            if route.get("receiver") == "oom-responder":
                # 10s / 1m in the example; scaled down like the rules.
                route["group_wait"] = "1s"
                route["group_interval"] = "1s"
        (receiver,) = (r for r in config["receivers"] if r["name"] == "oom-responder")
        (webhook,) = receiver["webhook_configs"]
        webhook["url"] = webhook_url
        webhook["http_config"]["authorization"]["credentials_file"] = str(token_file)
        return config

    def _prometheus_config(self, rules: Path, ksm_port: int, am_port: int) -> dict[str, Any]:
        kubelet_targets = [
            {
                "targets": [self.kwok_address],
                "labels": {"__metrics_path__": f"/metrics/nodes/{node}/metrics/resource", "node": node},
            }
            for node in self.node_names
        ]
        return {
            "global": {
                "scrape_interval": f"{SCRAPE_SECONDS}s",
                "scrape_timeout": f"{SCRAPE_SECONDS}s",
                "evaluation_interval": "1s",
            },
            "rule_files": [str(rules)],
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
            "scrape_configs": [
                # As kube-prometheus-stack scrapes them: kube-state-metrics' own namespace/pod labels win.
                {
                    "job_name": "kube-state-metrics",
                    "honor_labels": True,
                    "static_configs": [{"targets": [f"127.0.0.1:{ksm_port}"]}],
                },
                {"job_name": "kubelet", "honor_labels": True, "static_configs": kubelet_targets},
            ],
        }

    def _start_service(self, slack_url: str, deadline: float) -> None:
        config = {
            "mode": "enforce",
            "identity": "e2e-responder",
            "server": {"host": "127.0.0.1", "port": 0, "shutdown_timeout_seconds": 10},
            "auth": {"mode": "bearer", "bearer_token_env": "E2E_WEBHOOK_TOKEN"},
            "kubernetes": {"kubeconfig": str(self.kubeconfig), "own_namespace": self.own_namespace},
            # Other tests' leftover pods are seen by Prometheus too; the service acts on this suite's only, and
            # their alerts must not trip the cluster-wide breaker that would block this suite's mitigations.
            "guardrails": {
                "namespaces_include": self.namespaces_include,
                "blast_radius": {"max_workloads": 1000},
            },
            "verification": {"timeout_seconds": 60, "poll_seconds": 0.5},
            "notifiers": {
                "slack": {
                    "enabled": True,
                    "token_env": "E2E_SLACK_TOKEN",
                    "channel": SLACK_CHANNEL,
                    "api_url": f"{slack_url}/api/",
                    "timeout_seconds": 10,
                }
            },
            # The memory history is read from this stack's Prometheus, as from a cluster's.
            "prometheus": {"url": self.prometheus_url},
            "logging": {"format": "json", "level": "INFO"},
        }
        config_path = self.workdir / "responder.yaml"
        config_path.write_text(yaml.safe_dump(config))
        env = {**os.environ, "E2E_WEBHOOK_TOKEN": WEBHOOK_TOKEN, "E2E_SLACK_TOKEN": SLACK_TOKEN}
        self._spawn(
            "oom-responder",
            [sys.executable, "-m", "responder.cli", "serve", "--config", str(config_path)],
            env=env,
        )

        def listening() -> bool:
            for record in self.service_records():
                if record.get("message") == "listening":
                    self.service_url = f"http://{record['addresses'][0]}"
                    return True
            return False

        self._wait_until("the service listening", listening, deadline)

    # ---- reading ----------------------------------------------------------------------

    def describe(self) -> str:
        """What a failed wait should show: the webhook deliveries so far and each component's last log lines."""
        deliveries = [
            (
                d.status,
                [
                    (a["labels"].get("alertname"), a["labels"].get("pod"), a["status"])
                    for a in d.payload["alerts"]
                ],
            )
            for d in list(self.tap.deliveries)
        ]
        logs = "\n".join(f"--- {p.name}:\n{p.log_tail(6)}" for p in self.procs)
        return f"webhook deliveries: {deliveries}\n{logs}"

    def service_records(self) -> list[dict[str, Any]]:
        """The service's JSON log lines so far (other lines as ``{"message": line}``)."""
        try:
            text = self.service_log.read_text(errors="replace")
        except OSError:
            return []
        records: list[dict[str, Any]] = []
        for line in text.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                record = {"message": line}
            records.append(record if isinstance(record, dict) else {"message": line})
        return records

    async def prometheus_alerts(self, session: aiohttp.ClientSession) -> list[dict[str, Any]]:
        """Prometheus's active alerts (pending and firing), as ``/api/v1/alerts`` lists them."""
        async with session.get(f"{self.prometheus_url}/api/v1/alerts") as answer:
            body = await answer.json()
        alerts: list[dict[str, Any]] = body["data"]["alerts"]
        return alerts

    async def query(self, session: aiohttp.ClientSession, promql: str) -> list[dict[str, Any]]:
        """An instant query's result vector."""
        async with session.get(f"{self.prometheus_url}/api/v1/query", params={"query": promql}) as answer:
            body = await answer.json()
        if body.get("status") != "success":
            raise StackError(f"query {promql!r} failed: {body}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    # ---- internals --------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.procs.append(_Process(name, argv, self.workdir / "logs" / f"{name}.log", env=env))

    def _targets_up(self) -> bool:
        status, text = _get(f"{self.prometheus_url}/api/v1/targets")
        if status != 200:
            return False
        active = json.loads(text)["data"]["activeTargets"]
        return len(active) == 1 + len(self.node_names) and all(t["health"] == "up" for t in active)

    def _wait_until(self, what: str, predicate: Callable[[], bool], deadline: float) -> None:
        delay = 0.1
        while True:
            self.check_alive()
            with contextlib.suppress(OSError, ValueError, KeyError):
                if predicate():
                    return
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {p.name}:\n{p.log_tail(8)}" for p in self.procs)
                raise StackError(f"timed out waiting for {what}\n{logs}")
            time.sleep(delay)
            delay = min(delay * 1.5, 1.0)
