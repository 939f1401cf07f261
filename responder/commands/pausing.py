"""`oom-responder pause` and `oom-responder resume`: flip the cluster-wide pause switch.

Both write the state object (`responder.kube.state`) that every replica reads right before each write, so a
pause is honoured by all of them within one alert's processing; `resume` also closes the blast-radius breaker.
They touch nothing else: no workload, no notifier.
"""

from __future__ import annotations

import argparse
import datetime
import getpass
import socket
import sys

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument(
        "--config", metavar="FILE", help="config file (default: $OOM_RESPONDER_CONFIG, else defaults)"
    )
    parser.add_argument("--by", help="who is recorded as having done it (default: user@host)")
    parser.set_defaults(paused=name == "pause")


def _who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def run(args: argparse.Namespace) -> int:
    import asyncio  # noqa: PLC0415 - commands import what they need when they run

    from responder import config, metrics  # noqa: PLC0415
    from responder.kube import client, errors, state  # noqa: PLC0415

    settings = config.load_for_command(args.config)
    if settings is None:
        return 2
    paused: bool = args.paused
    by: str = args.by or _who()

    async def flip() -> None:
        kube = await client.Kube.connect(settings=settings.kubernetes, metrics=metrics.Metrics())
        try:
            namespace = state.state_namespace(settings, own_namespace=state.own_namespace(settings))
            store = state.StateStore(kube, namespace=namespace, settings=settings)
            now = datetime.datetime.now(datetime.UTC)
            stored = await store.set_paused(paused, by=by, now=now)
        finally:
            await kube.close()
        where = f"{namespace}/{store.name}"
        if stored.paused:
            print(f"paused by {by} ({where}): no replica mutates the cluster until `oom-responder resume`")
        else:
            print(f"resumed by {by} ({where}): mutations allowed again; the blast-radius breaker is closed")

    try:
        asyncio.run(flip())
    except client.NoCredentials as e:
        print(f"cluster: cannot load credentials: {e}", file=sys.stderr)
        return 1
    except errors.KubeError as e:
        print(f"cluster: {e.message}", file=sys.stderr)
        return 1
    return 0
