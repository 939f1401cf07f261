"""A separate OS process racing on the state object (test support; run as a script, no assertions here).

    python racer.py CONFIG.json ACTION COUNT NOW

Builds a `StateStore` from the settings in CONFIG.json (JSON of `Settings`), waits for the file named by the
`OOM_RESPONDER_RACE_GO` environment variable to exist (so that several processes start racing together), then
connects and runs COUNT concurrent calls of ACTION (`reserve` or `note:<prefix>`) at the instant NOW and prints one JSON line:
the decisions' guardrails (null for allowed) or the breaker transitions seen.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import sys
import time
from pathlib import Path

from responder import metrics
from responder.kube import client, state
from responder.models import settings, targets


async def race(
    config: settings.Settings, action: str, count: int, now: datetime.datetime
) -> list[str | None]:
    kube = await client.Kube.connect(settings=config.kubernetes, metrics=metrics.Metrics())
    try:
        store = state.StateStore(kube, namespace=state.own_namespace(config), settings=config)
        if action == "reserve":
            decisions = await asyncio.gather(*(store.reserve(now=now) for _ in range(count)))
            return [None if d.allowed else str(d.guardrail) for d in decisions]
        prefix = action.removeprefix("note:")
        noted = await asyncio.gather(
            *(
                store.note_alerting(
                    targets.Target(targets.WorkloadKind.DEPLOYMENT, "storm", f"{prefix}-{index}"), now=now
                )
                for index in range(count)
            )
        )
        return [None if transition is None else str(transition) for _, transition in noted]
    finally:
        await kube.close()


def main() -> None:
    config_path, action, count, now = sys.argv[1:5]
    config = settings.Settings.model_validate_json(Path(config_path).read_text(encoding="utf-8"))
    go = Path(os.environ["OOM_RESPONDER_RACE_GO"])
    while not go.exists():
        time.sleep(0.01)
    results = asyncio.run(race(config, action, int(count), datetime.datetime.fromisoformat(now)))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
