"""`oom-responder serve` without the CLI dispatcher, for checkouts where another subcommand's module is missing.

The dispatcher imports every command module to build its help; while one is still absent the benchmarks start
the serve command through this shim instead, and the results say so.
"""

from __future__ import annotations

import argparse
import sys

from responder.commands import serving


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="oom-responder serve")
    serving.add_arguments(parser, "serve")
    return serving.run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
