"""`oom-responder serve` without the CLI dispatcher, for checkouts where another subcommand's module is missing.

The dispatcher imports every command module to build its help; while one is still absent the benchmarks start
the serve command through this shim instead, and the results say so. `--gc-freeze` (an experiment of the
ingest benchmark) freezes the objects of start-up before serving.
"""

from __future__ import annotations

import argparse
import sys

from responder.commands import serving


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--gc-freeze" in argv:
        # Experiment: what `gc.freeze()` after start-up would do for the latency tail. Import what serve
        # imports, then move every object alive so far out of the collector's reach, so full collections
        # no longer walk the ~90,000 objects of the imported modules.
        argv.remove("--gc-freeze")
        import gc  # noqa: PLC0415

        from responder import config, logs  # noqa: F401, PLC0415
        from responder.engine import notifying, processing  # noqa: F401, PLC0415
        from responder.kube import client, state  # noqa: F401, PLC0415
        from responder.web import app  # noqa: F401, PLC0415

        gc.collect()
        gc.freeze()
    parser = argparse.ArgumentParser(prog="oom-responder serve")
    serving.add_arguments(parser, "serve")
    return serving.run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
