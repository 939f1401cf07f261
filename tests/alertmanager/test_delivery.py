"""What the real Alertmanager delivers, and what the service makes of it.

Covers, with Alertmanager v0.25 posting to the service over loopback: a group of several alerts is queued in
one notification; repeat notifications (repeat_interval) are counted as duplicates and queue nothing; a
resolved alert (send_resolved) arrives in a group still firing and is queued once, for notifications only; an
unmapped alert in the group is ignored; a 503 (queue full) makes Alertmanager retry the whole group, and after
the retry every alert is queued exactly once.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable

import pytest

from responder.models import work
from responder.web import app as app_mod
from tests.alertmanager.conftest import Alertmanager, ServiceFactory, am_alert, wait_until

pytestmark = pytest.mark.alertmanager

StartAlertmanager = Callable[..., Alertmanager]


def _summary(items: list[work.WorkItem]) -> list[tuple[str, str | None, str, str | None]]:
    return [
        (
            item.event.alertname,
            item.event.pod,
            item.event.status.value,
            item.playbook.name if item.playbook else None,
        )
        for item in items
    ]


async def test_a_group_its_repeats_and_a_resolved_alert(
    make_service: ServiceFactory, start_alertmanager: StartAlertmanager
) -> None:
    service = await make_service()
    am = start_alertmanager(f"{service.url}/webhook")
    starts_at = datetime.datetime.now(datetime.UTC).replace(microsecond=0) - datetime.timedelta(minutes=5)
    group = [
        am_alert("OOMKilled", pod="api-1", starts_at=starts_at),
        am_alert("OOMKilled", pod="api-2", starts_at=starts_at),
        am_alert("PodMemoryHigh", pod="web-1", starts_at=starts_at),
        am_alert("CPUThrottlingHigh", pod="web-1", starts_at=starts_at),
    ]
    await am.post_alerts(group)

    # 1. The group arrives in one notification.
    await wait_until(lambda: len(service.answers) >= 1, what="the first notification")
    assert service.answers[0] == (
        202,
        {"accepted": 3, "duplicates": 0, "resolved": 0, "ignored": 1, "refused": 0},
    )

    # 2. Nothing changed: the next notification is a repeat, all duplicates.
    await wait_until(lambda: len(service.answers) >= 2, what="a repeat notification")
    assert service.answers[1] == (
        202,
        {"accepted": 0, "duplicates": 3, "resolved": 0, "ignored": 1, "refused": 0},
    )

    # 3. One alert resolves; Alertmanager sends it in the group that is still firing.
    now = datetime.datetime.now(datetime.UTC)
    await am.post_alerts([am_alert("OOMKilled", pod="api-1", starts_at=starts_at, resolved_at=now)])
    await wait_until(
        lambda: any(body.get("resolved") for _, body in service.answers), what="the resolved notification"
    )
    first_resolved = next(i for i, (_, body) in enumerate(service.answers) if body.get("resolved"))
    assert service.answers[first_resolved] == (
        202,
        {"accepted": 0, "duplicates": 2, "resolved": 1, "ignored": 1, "refused": 0},
    )
    # Any notification in between was a plain repeat.
    for status, body in service.answers[2:first_resolved]:
        assert (status, body) == (
            202,
            {"accepted": 0, "duplicates": 3, "resolved": 0, "ignored": 1, "refused": 0},
        )

    await service.app[app_mod.QUEUE].wait_idle()
    assert _summary(service.recorder.items) == [
        ("OOMKilled", "api-1", "firing", "oom-raise-memory"),
        ("OOMKilled", "api-2", "firing", "oom-raise-memory"),
        ("PodMemoryHigh", "web-1", "firing", "memory-high-scale-out"),
        ("OOMKilled", "api-1", "resolved", None),
    ]
    occurrences = {item.event.occurrence_id for item in service.recorder.items[:3]}
    assert len(occurrences) == 3
    assert service.recorder.items[3].event.occurrence_id == service.recorder.items[0].event.occurrence_id
    assert all(status == 202 for status, _ in service.answers)


async def test_a_full_queue_makes_alertmanager_retry_and_nothing_is_lost(
    make_service: ServiceFactory, start_alertmanager: StartAlertmanager
) -> None:
    service = await make_service(queue={"max_pending": 3, "workers": 1})
    queue = service.app[app_mod.QUEUE]
    # Hold the handler and fill two of three places, so Alertmanager's group of two alerts cannot fit.
    service.recorder.release.clear()
    am = start_alertmanager(f"{service.url}/webhook", repeat_interval="1h")
    starts_at = datetime.datetime.now(datetime.UTC).replace(microsecond=0) - datetime.timedelta(minutes=5)
    await am.post_alerts(
        [
            am_alert("OOMKilled", pod="early-1", namespace="early", starts_at=starts_at),
            am_alert("OOMKilled", pod="early-2", namespace="early", starts_at=starts_at),
        ]
    )
    await wait_until(lambda: queue.pending == 2, what="the first group to be queued")
    await am.post_alerts(
        [
            am_alert("OOMKilled", pod="late-1", starts_at=starts_at),
            am_alert("PodMemoryHigh", pod="late-2", starts_at=starts_at),
        ]
    )
    await wait_until(
        lambda: any(status == 503 for status, _ in service.answers), what="a 503 for the second group"
    )
    assert {item.event.pod for item in service.queued()} == {"early-1", "early-2"}

    service.recorder.release.set()
    await wait_until(
        lambda: any(body.get("accepted") == 2 and status == 202 for status, body in service.answers[1:]),
        what="Alertmanager's retry of the second group",
    )
    await queue.wait_idle()
    pods = [item.event.pod or "" for item in service.recorder.items]
    assert sorted(pods) == ["early-1", "early-2", "late-1", "late-2"]
    rejected = [body for status, body in service.answers if status == 503]
    assert all(body["error"] == "queue full" for body in rejected)
