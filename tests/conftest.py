"""Shared pytest configuration for all tests.

* The real control plane's and the real Prometheus's fixtures are registered from `tests.kubeplane.plugin`
  and `tests.promstack.plugin`.
* `_no_leaked_tasks` (autouse) fails any test that leaves asyncio tasks running behind it: a task nobody
  awaits is a mitigation, verification or notice that may never finish, or finish during another test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

pytest_plugins = ["tests.kubeplane.plugin", "tests.promstack.plugin"]


@pytest.fixture(autouse=True)
async def _no_leaked_tasks() -> AsyncIterator[None]:
    before = asyncio.all_tasks()
    yield
    # Tasks that end on their own at the next turn of the loop (a cancelled one unwinding) are not leaks.
    await asyncio.sleep(0)
    me = asyncio.current_task()
    leaked = [task for task in asyncio.all_tasks() - before if task is not me and not task.done()]
    if not leaked:
        return
    for task in leaked:
        task.cancel()
    await asyncio.gather(*leaked, return_exceptions=True)
    pytest.fail(
        f"the test left {len(leaked)} asyncio task(s) running: {sorted(t.get_name() for t in leaked)}"
    )
