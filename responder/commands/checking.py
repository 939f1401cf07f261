"""`oom-responder check-config FILE`: validate a config file without starting anything.

Exit 0 and `ok: FILE` when valid; exit 2 with one line per problem, each naming its key path. It must not read
secrets or contact the cluster: it checks the file, so it can run in CI on a laptop.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("file", metavar="FILE", help="YAML config file to validate")


def run(args: argparse.Namespace) -> int:
    from responder import config  # noqa: PLC0415 - commands import what they need when they run

    try:
        config.load_settings(args.file)
    except config.ConfigError as e:
        for problem in e.problems:
            print(
                f"{args.file}: {problem}" if not problem.startswith(str(args.file)) else problem,
                file=sys.stderr,
            )
        return 2
    print(f"ok: {args.file}")
    return 0
