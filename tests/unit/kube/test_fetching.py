"""What the read side remembers and how it spells its queries (`responder.kube.fetching`, no I/O).

Aspects covered:

* an API found not served is remembered for its time to live (injected clock), then asked about again;
  other APIs are not affected;
* until an API has answered once, concurrent callers take turns: twenty alerts at once cost one 404;
* a field selector's value cannot add a term: backslash, comma and equals sign are escaped.
"""

from __future__ import annotations

import asyncio
from typing import Any

from responder import metrics as metrics_mod
from responder.kube import client, fetching
from responder.models import settings, targets


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_api_found_not_served_is_remembered_until_its_time_to_live_passes() -> None:
    clock = Clock()
    unserved = fetching.Unserved(ttl_seconds=300, monotonic=clock)
    assert not unserved.known("autoscaling.k8s.io/v1/verticalpodautoscalers")

    unserved.remember("autoscaling.k8s.io/v1/verticalpodautoscalers")
    clock.now += 299

    assert unserved.known("autoscaling.k8s.io/v1/verticalpodautoscalers")
    assert not unserved.known("example.com/v1/others")
    clock.now += 1
    assert not unserved.known("autoscaling.k8s.io/v1/verticalpodautoscalers")


def test_a_field_selector_value_cannot_add_a_term() -> None:
    assert fetching._field_value("web") == "web"
    assert fetching._field_value("a,reason=x") == "a\\,reason\\=x"
    assert fetching._field_value("a\\b") == "a\\\\b"


class _SlowNotServed:
    """A transport answering 404 to everything, after a yield to the event loop (so callers overlap)."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def send(self, method: str, path: str, **_: Any) -> client.Answer:
        self.paths.append(path)
        await asyncio.sleep(0)
        return client.Answer(status=404, data='{"kind":"Status","code":404}', headers={})


async def test_callers_take_turns_until_an_api_has_answered_once() -> None:
    """A storm's first alerts do not all ask for the VPA API at once: one 404 answers them all."""
    transport = _SlowNotServed()
    kube = client.Kube(
        settings=settings.KubernetesSettings(),
        metrics=metrics_mod.Metrics(),
        transport=transport,  # type: ignore[arg-type]  # only send() is reached
    )
    unserved = fetching.Unserved()
    target = targets.Target(targets.WorkloadKind.DEPLOYMENT, "shop", "api")
    modes = await asyncio.gather(
        *(fetching.find_vpa_update_mode(kube, target, unserved=unserved) for _ in range(20))
    )
    assert modes == [None] * 20
    assert len(transport.paths) == 1
