"""The `oom-responder` command: parses arguments and hands over to one module per subcommand."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

import responder

__all__ = ["main"]

# name → (module under responder.commands, help). Command modules keep heavy imports inside run(), so
# `check-config` does not pay for importing the Kubernetes client.
_COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("serving", "run the webhook receiver and the mitigation pipeline"),
    "check-config": ("checking", "validate a config file; exit 2 with one line per problem"),
    "plan": ("planning", "print what would be done for an Alertmanager payload; never writes"),
    "doctor": (
        "doctoring",
        "check the cluster is reachable and every RBAC verb the playbooks need is allowed",
    ),
    "pause": ("pausing", "stop every replica from mutating the cluster until `resume`"),
    "resume": ("pausing", "allow mutations again and close the blast-radius breaker"),
    "analyze": (
        "analysing",
        "name a workload's memory pattern (leak, spike, stable…), time to OOM and right-sized limit",
    ),
    "schedules": (
        "scheduling",
        "list follow-ups (verdicts, restart schedules, rollouts in flight) or cancel a restart schedule",
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="oom-responder", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {responder.__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in _COMMANDS.items():
        module = importlib.import_module(f"responder.commands.{module_name}")
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sub, name)
        sub.set_defaults(_run=module.run)
    args = parser.parse_args(argv)
    code: int = args._run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
