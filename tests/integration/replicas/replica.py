"""One responder replica as its own OS process, wired as `serve` wires it (test support; run as a script).

    python replica.py CONFIG.json PORT_FILE NOTICES_FILE

It serves POST /webhook, /readyz and /metrics on a free loopback port (written to PORT_FILE once listening)
with the real queue, Processor, Kubernetes client and cluster-wide state store; notices are appended to
NOTICES_FILE as JSON lines (the only part that stands in for Slack). SIGTERM drains and stops it; SIGKILL
is what the tests use to crash it.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

from aiohttp import web

from responder import metrics as metrics_mod
from responder.engine import processing
from responder.kube import client, state
from responder.models import notices, settings
from responder.web import app as app_mod
from responder.web import auth


class FileNotifier:
    """Appends one JSON line per notice; flushed at once so a SIGKILL loses nothing already told."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("a", encoding="utf-8")

    def notify(self, notice: notices.Notice) -> None:
        record = {
            "kind": notice.kind.value,
            "incident": notice.incident,
            "summary": notice.summary,
            "guardrail": notice.guardrail.value if notice.guardrail else None,
            "outcome": notice.outcome.value if notice.outcome else None,
            "reason": notice.reason.value if notice.reason else None,
            "target": notice.target.key if notice.target else None,
        }
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()


def _write_port(path: Path, port: int) -> None:
    # Written whole under a temporary name and renamed, so a reader never sees a partial number.
    temporary = path.with_suffix(".tmp")
    temporary.write_text(str(port), encoding="utf-8")
    temporary.rename(path)


async def main(config: settings.Settings, port_file: Path, notices_file: Path) -> None:
    metrics = metrics_mod.Metrics()
    kube = await client.Kube.connect(settings=config.kubernetes, metrics=metrics)
    store = state.StateStore(
        kube,
        namespace=state.state_namespace(config, own_namespace=state.own_namespace(config)),
        settings=config,
    )
    processor = processing.Processor(
        settings=config, metrics=metrics, kube=kube, notifiers=FileNotifier(notices_file), state_store=store
    )
    app = app_mod.make_app(
        settings=config,
        metrics=metrics,
        handler=processor.handle,
        readiness=lambda: (True, {"mode": config.mode.value}),
        authenticator=auth.Authenticator(disabled=True),
    )
    runner = web.AppRunner(app, shutdown_timeout=5.0, access_log=None)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = next(address[1] for address in runner.addresses if isinstance(address, tuple))
        _write_port(port_file, port)
        await stop.wait()
        await app_mod.begin_shutdown(app)
    finally:
        await runner.cleanup()
        await processor.close(1)
        await kube.close()


if __name__ == "__main__":
    config_path, port_path, notices_path = sys.argv[1:4]
    loaded = settings.Settings.model_validate_json(Path(config_path).read_text(encoding="utf-8"))
    asyncio.run(main(loaded, Path(port_path), Path(notices_path)))
