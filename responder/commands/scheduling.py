"""`oom-responder schedules [list | cancel NS/KIND/NAME]`: the follow-ups in the cluster, and stopping a schedule.

`list` reads the follow-up records (`responder.kube.follow_ups`) and prints, per workload, the verdicts still
due, the restart schedule and a rollout still being verified. `cancel` asks for a restart schedule to stop:
it sets `stop_requested_by` on the record by compare-and-swap, and the next replica that looks at it stops it
and announces that in the incident's thread (so the announcement goes out once, from the service). An
unreadable record (edited by hand) is retired by `cancel` (replaced by an idle tombstone). Nothing else is touched: no workload, no notifier.
"""

from __future__ import annotations

import argparse
import datetime
import getpass
import socket
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from responder.kube import follow_ups as store_mod
    from responder.models import follow_ups, targets

__all__ = ["add_arguments", "describe", "parse_target", "run"]


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument(
        "--config", metavar="FILE", help="config file (default: $OOM_RESPONDER_CONFIG, else defaults)"
    )
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.add_parser("list", help="list follow-ups: pending verdicts, restart schedules, rollouts in flight")
    cancel = sub.add_parser("cancel", help="stop the restart schedule of one workload")
    cancel.add_argument("workload", metavar="NS/KIND/NAME", help="e.g. shop/Deployment/web")
    cancel.add_argument("--by", help="who is recorded as having cancelled it (default: user@host)")


def _who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def parse_target(text: str) -> targets.Target:
    """ "shop/Deployment/web" (kind in any case, "deploy"/"sts"/"ds" too) as a Target; ValueError otherwise."""
    from responder.models import targets  # noqa: PLC0415

    parts = text.split("/")
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"want NAMESPACE/KIND/NAME, got {text!r}")
    namespace, kind, name = parts
    aliases = {"deploy": "Deployment", "sts": "StatefulSet", "ds": "DaemonSet"}
    wanted = aliases.get(kind.lower(), kind).lower()
    for known in targets.WorkloadKind:
        if known.value.lower() == wanted:
            return targets.Target(known, namespace, name)
    kinds = ", ".join(k.value for k in targets.WorkloadKind)
    raise ValueError(f"unknown kind {kind!r} (one of {kinds})")


def _when(moment: datetime.datetime | None, now: datetime.datetime) -> str:
    if moment is None:
        return "-"
    delta = (moment - now).total_seconds()
    from responder.logic import following  # noqa: PLC0415

    relative = (
        f"in {following.describe_duration(delta)}"
        if delta >= 0
        else f"{following.describe_duration(-delta)} ago"
    )
    return f"{moment.strftime('%Y-%m-%d %H:%M:%S')} UTC ({relative})"


def describe(record: follow_ups.FollowUp, *, now: datetime.datetime) -> list[str]:
    """The lines `list` prints for one record."""
    from responder.models import follow_ups  # noqa: PLC0415

    lines = [
        f"{record.target.key}  (incident {record.incident}, {record.action.value} at {_when(record.acted_at, now)})"
    ]
    taken = [
        f"{follow_ups.horizon_label(h.seconds)} {h.verdict.kind.value}" for h in record.horizons if h.verdict
    ]
    pending = [h for h in record.horizons if h.verdict is None]
    if record.horizons:
        lines.append(
            f"  verdicts: {', '.join(taken) or 'none yet'}"
            + (
                f"; next {follow_ups.horizon_label(pending[0].seconds)} at {_when(pending[0].due_at, now)}"
                if pending
                else ""
            )
        )
    schedule = record.schedule
    if schedule is not None:
        from responder.logic import following  # noqa: PLC0415

        count = f"{schedule.count}" + (f"/{schedule.max_count}" if schedule.max_count else "")
        if schedule.stopped is not None:
            lines.append(f"  schedule: stopped ({schedule.stopped.value}) after {count} restart(s)")
        else:
            state = f"; stop requested by {schedule.stop_requested_by}" if schedule.stop_requested_by else ""
            blocked = f"; last due restart: {schedule.blocked}" if schedule.blocked else ""
            lines.append(
                f"  schedule: restart every {following.describe_duration(schedule.interval_seconds)}, "
                f"{count} done, next at {_when(schedule.next_at, now)}, expires {_when(schedule.expires_at, now)}"
                f"{state}{blocked}"
            )
    if record.verification is not None:
        lines.append(
            f"  verification: rollout of generation {record.verification.generation} pending, "
            f"deadline {_when(record.verification.deadline, now)}"
        )
    if record.claim is not None and record.claim.until > now:
        lines.append(f"  claimed by {record.claim.holder} until {_when(record.claim.until, now)}")
    return lines


def run(args: argparse.Namespace) -> int:
    import asyncio  # noqa: PLC0415 - commands import what they need when they run

    from responder import config, metrics  # noqa: PLC0415
    from responder.kube import client, errors, state  # noqa: PLC0415
    from responder.kube import follow_ups as store_mod  # noqa: PLC0415

    settings = config.load_for_command(args.config)
    if settings is None:
        return 2
    verb = args.verb or "list"
    target = None
    if verb == "cancel":
        try:
            target = parse_target(args.workload)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2

    async def act() -> int:
        kube = await client.Kube.connect(settings=settings.kubernetes, metrics=metrics.Metrics())
        try:
            namespace = settings.follow_up.namespace or state.own_namespace(settings)
            store = store_mod.FollowUpStore(kube, namespace=namespace)
            now = datetime.datetime.now(datetime.UTC)
            if target is None:
                return await _list(store, now=now)
            return await _cancel(store, target, by=args.by or _who())
        finally:
            await kube.close()

    try:
        return asyncio.run(act())
    except client.NoCredentials as e:
        print(f"cluster: cannot load credentials: {e}", file=sys.stderr)
        return 1
    except errors.KubeError as e:
        print(f"cluster: {e.message}", file=sys.stderr)
        return 1


async def _list(store: store_mod.FollowUpStore, *, now: datetime.datetime) -> int:
    found = await store.list()
    if not found:
        print(f"no follow-ups in namespace {store.namespace}")
        return 0
    found = [stored for stored in found if stored.record is None or stored.record.ended is None]
    if not found:
        print(f"no follow-ups in namespace {store.namespace}")
        return 0
    for stored in sorted(found, key=lambda s: s.target_key or s.name):
        if stored.record is None:
            print(
                f"{stored.target_key or '?'}  UNREADABLE record {store.namespace}/{stored.name}: {stored.error}"
            )
            continue
        print("\n".join(describe(stored.record, now=now)))
    return 0


async def _cancel(store: store_mod.FollowUpStore, target: targets.Target, *, by: str) -> int:
    from responder.models import follow_ups  # noqa: PLC0415
    from responder.models import settings as settings_mod  # noqa: PLC0415

    stored = await store.read(target)
    if stored is None or (stored.record is not None and stored.record.ended is not None):
        print(f"no follow-up for {target.key} in namespace {store.namespace}", file=sys.stderr)
        return 1
    if stored.record is None:
        retired = follow_ups.FollowUp(
            kind=target.kind,
            namespace=target.namespace,
            name=target.name,
            incident="cancelled",
            playbook="-",
            action=settings_mod.Action.ROLLOUT_RESTART,
            acted_at=datetime.datetime.now(datetime.UTC),
            ended=follow_ups.EndReason.CANCELLED,
        )
        if await store.retire(stored, retired):
            print(f"retired the unreadable follow-up record {store.namespace}/{stored.name} of {target.key}")
            return 0
        print("the record changed meanwhile: run the command again", file=sys.stderr)
        return 1
    outcome: list[str] = []

    def change(current: follow_ups.FollowUp | None) -> follow_ups.FollowUp | store_mod._Delete | None:
        outcome[:] = []
        if current is None or current.schedule is None or current.schedule.stopped is not None:
            outcome.append("none")
            return None
        if current.schedule.stop_requested_by:
            outcome.append("already")
            return None
        return current.model_copy(
            update={"schedule": current.schedule.model_copy(update={"stop_requested_by": by})}
        )

    await store.update(target, change)
    if outcome == ["none"]:
        print(f"{target.key} has no running restart schedule", file=sys.stderr)
        return 1
    if outcome == ["already"]:
        print(f"a stop of the restart schedule of {target.key} was already requested")
        return 0
    print(
        f"stop of the restart schedule of {target.key} requested by {by}: the next replica to look stops it "
        "(within follow_up.poll_seconds) and announces it in the incident's thread"
    )
    return 0
