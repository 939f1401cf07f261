"""What the read side remembers and how it spells its queries (`responder.kube.fetching`, no I/O).

Aspects covered:

* an API found not served is remembered for its time to live (injected clock), then asked about again;
  other APIs are not affected;
* a field selector's value cannot add a term: backslash, comma and equals sign are escaped.
"""

from __future__ import annotations

from responder.kube import fetching


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
