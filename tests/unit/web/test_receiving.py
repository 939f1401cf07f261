"""POST /webhook: what is accepted, what is refused, and that nothing acknowledged is lost.

Covers: 202 counts (accepted, duplicates, resolved, ignored) for groups, repeats, resolved alerts and in-payload
duplicates; every rejection (401, 413 by header and while streaming, 415, 400 with the position, 422 with field
paths, 503 full and shutting down) as JSON, each leaving the queue exactly as it was and losing nothing
accepted before; a full queue and a shutdown are answered before the body is looked at; a rejected request is
not remembered as seen, so Alertmanager's retry is accepted; a UTF-8 byte order mark is accepted; metrics for
all of it, alerts counted per (alert name, status); each webhook logged with its counts in a batched line (the
same counts of one group tallied; each alone at DEBUG), occurrence ids at DEBUG only.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from responder.web import app as app_mod
from tests.unit import payloads
from tests.unit.web.conftest import AUTH, ServiceFactory

OOM_1 = payloads.alert("OOMKilled", pod="api-1", fingerprint="f1")
OOM_2 = payloads.alert("OOMKilled", pod="api-2", fingerprint="f2")
HIGH_3 = payloads.alert("PodMemoryHigh", pod="web-1", fingerprint="f3")
UNKNOWN = payloads.alert("CPUThrottlingHigh", pod="api-1", fingerprint="f4")
OCCURRENCE = "{}@2024-05-01T10:00:00+00:00"


async def _post(service: Any, body: Any, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    response = await service.client.post("/webhook", json=body, headers=AUTH if headers is None else headers)
    return response.status, await response.json()


async def test_a_group_is_queued_and_unknown_alerts_are_ignored(make_service: ServiceFactory) -> None:
    service = await make_service()
    status, body = await _post(service, payloads.payload(OOM_1, OOM_2, HIGH_3, UNKNOWN))
    assert status == 202
    assert body == {"accepted": 3, "duplicates": 0, "resolved": 0, "ignored": 1, "refused": 0}
    assert await service.settle() == [OCCURRENCE.format(f) for f in ("f1", "f2", "f3")]
    [first, _, third] = service.recorder.items
    assert first.playbook is not None and first.playbook.name == "oom-raise-memory"
    assert third.playbook is not None and third.playbook.name == "memory-high-scale-out"
    assert first.queue_key == "shop/api-1"


async def test_repeats_are_duplicates_and_resolved_alerts_are_passed_on_once(
    make_service: ServiceFactory,
) -> None:
    service = await make_service()
    await _post(service, payloads.payload(OOM_1, OOM_2))
    status, body = await _post(service, payloads.payload(OOM_1, OOM_2))
    assert (status, body) == (
        202,
        {"accepted": 0, "duplicates": 2, "resolved": 0, "ignored": 0, "refused": 0},
    )
    resolved = {**OOM_1, "status": "resolved"}
    status, body = await _post(service, payloads.payload(resolved, OOM_2))
    assert body == {"accepted": 0, "duplicates": 1, "resolved": 1, "ignored": 0, "refused": 0}
    status, body = await _post(service, payloads.payload(resolved))
    assert body == {"accepted": 0, "duplicates": 1, "resolved": 0, "ignored": 0, "refused": 0}
    seen = await service.settle()
    assert seen == [OCCURRENCE.format("f1"), OCCURRENCE.format("f2"), OCCURRENCE.format("f1")]
    assert service.recorder.items[2].playbook is None
    assert service.registry.get_sample_value("oom_responder_alerts_deduplicated_total") == 4
    assert service.registry.get_sample_value("oom_responder_webhook_requests_total", {"code": "202"}) == 4


async def test_a_new_firing_of_the_same_alert_is_not_a_duplicate(make_service: ServiceFactory) -> None:
    service = await make_service()
    again = {**OOM_1, "startsAt": "2024-05-01T11:00:00Z"}
    await _post(service, payloads.payload(OOM_1))
    status, body = await _post(service, payloads.payload(again))
    assert (status, body["accepted"]) == (202, 1)
    assert len(await service.settle()) == 2


async def test_the_same_occurrence_twice_in_one_payload_is_queued_once(make_service: ServiceFactory) -> None:
    service = await make_service()
    status, body = await _post(service, payloads.payload(OOM_1, OOM_1))
    assert status == 202
    assert body == {"accepted": 1, "duplicates": 1, "resolved": 0, "ignored": 0, "refused": 0}
    assert len(await service.settle()) == 1


async def test_alerts_no_playbook_answers_are_ignored(make_service: ServiceFactory) -> None:
    service = await make_service(
        playbooks=[
            {
                "name": "only-prod",
                "alerts": ["oom_killed"],
                "matchers": ['namespace="prod"'],
                "actions": ["evict_pod"],
            }
        ]
    )
    status, body = await _post(service, payloads.payload(OOM_1, {**OOM_2, "status": "resolved"}))
    assert status == 202
    assert body == {"accepted": 0, "duplicates": 0, "resolved": 0, "ignored": 2, "refused": 0}
    assert await service.settle() == []


async def test_received_alerts_are_counted_with_unmapped_names_folded(make_service: ServiceFactory) -> None:
    service = await make_service()
    await _post(service, payloads.payload(OOM_1, UNKNOWN))
    sample = service.registry.get_sample_value
    assert sample("oom_responder_alerts_received_total", {"alertname": "OOMKilled", "status": "firing"}) == 1
    assert sample("oom_responder_alerts_received_total", {"alertname": "other", "status": "firing"}) == 1
    await service.settle()


async def test_alerts_are_counted_per_name_and_status_however_many_share_them(
    make_service: ServiceFactory,
) -> None:
    service = await make_service()
    other = payloads.alert("KubeJobFailed", pod="job-1", fingerprint="f5")
    resolved = {**HIGH_3, "status": "resolved"}
    await _post(service, payloads.payload(OOM_1, OOM_2, OOM_1, resolved, UNKNOWN, other))
    sample = service.registry.get_sample_value
    assert sample("oom_responder_alerts_received_total", {"alertname": "OOMKilled", "status": "firing"}) == 3
    assert (
        sample("oom_responder_alerts_received_total", {"alertname": "PodMemoryHigh", "status": "resolved"})
        == 1
    )
    assert sample("oom_responder_alerts_received_total", {"alertname": "other", "status": "firing"}) == 2
    assert sample("oom_responder_alerts_deduplicated_total") == 1
    await service.settle()


async def test_webhooks_are_logged_with_their_counts_in_one_batched_line_and_alone_only_at_debug(
    make_service: ServiceFactory, caplog: pytest.LogCaptureFixture
) -> None:
    service = await make_service()
    with caplog.at_level(logging.INFO, logger="responder.web.receiving"):
        await _post(service, payloads.payload(OOM_1, OOM_2, UNKNOWN))
        await _post(service, payloads.payload(HIGH_3, OOM_1))
        await _post(service, payloads.payload(HIGH_3, OOM_1))
        await service.settle()
        # Batched: nothing yet (the line is written when full, after a quarter of a second, or at shutdown).
        assert [r for r in caplog.records if r.name == "responder.web.receiving"] == []
        await app_mod.begin_shutdown(service.app)
    [record] = [r for r in caplog.records if r.name == "responder.web.receiving"]
    assert (record.levelno, record.getMessage(), record.count) == (  # type: ignore[attr-defined]
        logging.INFO,
        "webhooks accepted",
        3,
    )
    # Webhooks of one group with the same counts are listed once, with how many there were.
    keys = ("count", "accepted", "duplicates", "resolved", "ignored", "refused")
    assert [tuple(w[key] for key in keys) for w in record.webhooks] == [  # type: ignore[attr-defined]
        (1, 2, 0, 0, 1, 0),
        (1, 1, 1, 0, 0, 0),
        (1, 0, 2, 0, 0, 0),
    ]
    assert all(w["receiver"] == "oom-responder" for w in record.webhooks)  # type: ignore[attr-defined]


async def test_at_debug_each_webhook_and_its_occurrences_have_lines_of_their_own(
    make_service: ServiceFactory, caplog: pytest.LogCaptureFixture
) -> None:
    service = await make_service()
    await _post(service, payloads.payload(OOM_1))
    with caplog.at_level(logging.DEBUG, logger="responder.web.receiving"):
        await _post(service, payloads.payload(HIGH_3, OOM_1))
    debug = [r for r in caplog.records if r.levelno == logging.DEBUG]
    assert [r.getMessage() for r in debug] == ["webhook accepted", "alerts queued"]
    assert (debug[0].accepted, debug[0].duplicates) == (1, 1)  # type: ignore[attr-defined]
    assert debug[1].occurrence_ids == [OCCURRENCE.format("f3")]  # type: ignore[attr-defined]
    await service.settle()


async def test_a_utf8_byte_order_mark_is_accepted(make_service: ServiceFactory) -> None:
    service = await make_service()
    body = b"\xef\xbb\xbf" + json.dumps(payloads.payload(OOM_1)).encode()
    response = await service.client.post(
        "/webhook", data=body, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status == 202
    assert (await response.json())["accepted"] == 1
    assert await service.settle() == [OCCURRENCE.format("f1")]


# Rejections. Each test first gets one alert accepted and held in the queue, sends the bad request, and then
# checks the queue holds exactly that one alert and the handler finally sees it (nothing lost, nothing added).


async def _accept_one(service: Any) -> None:
    service.recorder.release.clear()
    status, _ = await _post(service, payloads.payload(OOM_1))
    assert status == 202


async def _assert_only_the_first_was_queued(service: Any) -> None:
    assert service.queued() == [OCCURRENCE.format("f1")]
    assert await service.settle() == [OCCURRENCE.format("f1")]


async def test_no_or_wrong_credentials_get_401(make_service: ServiceFactory) -> None:
    service = await make_service()
    await _accept_one(service)
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic " + base64.b64encode(b"am:no").decode()},
    ):
        status, body = await _post(service, payloads.payload(OOM_2), headers)
        assert status == 401
        assert body["error"] == "unauthorized"
    await _assert_only_the_first_was_queued(service)
    assert service.registry.get_sample_value("oom_responder_webhook_requests_total", {"code": "401"}) == 3


async def test_basic_auth_is_accepted_when_configured(make_service: ServiceFactory) -> None:
    service = await make_service()
    basic = {"Authorization": "Basic " + base64.b64encode(b"am:pw").decode()}
    status, _ = await _post(service, payloads.payload(OOM_1), basic)
    assert status == 202
    await service.settle()


async def test_a_body_over_the_cap_by_its_length_header_gets_413(make_service: ServiceFactory) -> None:
    service = await make_service(server={"max_body_bytes": 2000})
    await _accept_one(service)
    big = json.dumps(payloads.payload(*[payloads.alert(pod=f"p{n}", fingerprint=f"x{n}") for n in range(20)]))
    response = await service.client.post(
        "/webhook", data=big, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status == 413
    body = await response.json()
    assert body == {
        "error": "payload too large",
        "detail": ["body exceeds 2000 bytes (server.max_body_bytes)"],
    }
    await _assert_only_the_first_was_queued(service)


async def test_a_streamed_body_over_the_cap_gets_413_without_a_length_header(
    make_service: ServiceFactory,
) -> None:
    service = await make_service(server={"max_body_bytes": 2000})
    await _accept_one(service)

    async def chunks() -> AsyncIterator[bytes]:
        # No Content-Length: chunked transfer, so the cap is enforced while reading.
        yield b'{"version": "4", "alerts": ['
        for _ in range(50):
            yield b" " * 100

    response = await service.client.post(
        "/webhook", data=chunks(), headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status == 413
    await _assert_only_the_first_was_queued(service)


async def test_a_non_json_content_type_gets_415(make_service: ServiceFactory) -> None:
    service = await make_service()
    await _accept_one(service)
    response = await service.client.post(
        "/webhook", data=json.dumps(payloads.payload(OOM_2)), headers={**AUTH, "Content-Type": "text/plain"}
    )
    assert response.status == 415
    body = await response.json()
    assert body["error"] == "unsupported content type"
    await _assert_only_the_first_was_queued(service)


async def test_malformed_json_gets_400_with_the_position(make_service: ServiceFactory) -> None:
    service = await make_service()
    await _accept_one(service)
    response = await service.client.post(
        "/webhook", data='{"version": "4",', headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status == 400
    body = await response.json()
    assert body["error"] == "malformed JSON"
    assert body["detail"][0].startswith("line 1 column 17: ")
    await _assert_only_the_first_was_queued(service)


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b'{"version": "4"} and more', "line 1 column 18: Extra data"),
        (b"", "line 1 column 1: Expecting value"),
        (b'{"version": "\xff"}', "'utf-8' codec can't decode byte 0xff in position 13: invalid start byte"),
    ],
)
async def test_what_is_not_json_gets_400_saying_where(
    make_service: ServiceFactory, body: bytes, detail: str
) -> None:
    service = await make_service()
    await _accept_one(service)
    response = await service.client.post(
        "/webhook", data=body, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status == 400
    assert await response.json() == {"error": "malformed JSON", "detail": [detail]}
    await _assert_only_the_first_was_queued(service)


async def test_a_schema_error_gets_422_naming_the_field_paths(make_service: ServiceFactory) -> None:
    service = await make_service()
    await _accept_one(service)
    broken = {key: value for key, value in OOM_2.items() if key != "startsAt"}
    status, body = await _post(service, payloads.payload(OOM_2, {**HIGH_3, "status": "pending"}, broken))
    assert status == 422
    assert body["error"] == "not an Alertmanager webhook payload"
    assert "alerts[2].startsAt: Field required" in body["detail"]
    assert any(line.startswith("alerts[1].status: ") for line in body["detail"])
    assert len(body["detail"]) == 2
    status, body = await _post(service, [1, 2])
    assert status == 422
    await _assert_only_the_first_was_queued(service)


async def test_a_rejected_request_is_not_remembered_so_its_retry_is_accepted(
    make_service: ServiceFactory,
) -> None:
    service = await make_service(queue={"max_pending": 1})
    await _accept_one(service)
    status, body = await _post(service, payloads.payload(OOM_2))
    assert status == 503
    assert body["error"] == "queue full"
    await _assert_only_the_first_was_queued(service)
    status, body = await _post(service, payloads.payload(OOM_2))
    assert (status, body["accepted"]) == (202, 1)
    assert (await service.settle())[-1] == OCCURRENCE.format("f2")


async def test_a_full_queue_refuses_the_whole_group(make_service: ServiceFactory) -> None:
    service = await make_service(queue={"max_pending": 2})
    await _accept_one(service)
    status, body = await _post(service, payloads.payload(OOM_2, HIGH_3))
    assert status == 503
    assert body["detail"][0] == "queue full: 1 of 2 alerts pending, 2 more offered"
    await _assert_only_the_first_was_queued(service)
    assert service.registry.get_sample_value("oom_responder_webhook_requests_total", {"code": "503"}) == 1


async def test_a_full_queue_refuses_before_looking_at_the_body(make_service: ServiceFactory) -> None:
    service = await make_service(queue={"max_pending": 1})
    await _accept_one(service)
    # Not even JSON: a full queue answers 503 (retried by Alertmanager) without reading or parsing anything.
    response = await service.client.post(
        "/webhook", data=b"{not json", headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status == 503
    assert await response.json() == {
        "error": "queue full",
        "detail": ["queue full: 1 of 1 alerts pending", "Alertmanager will retry"],
    }
    status, _ = await _post(service, payloads.payload(OOM_2))
    assert status == 503
    await _assert_only_the_first_was_queued(service)
    assert service.registry.get_sample_value("oom_responder_webhook_requests_total", {"code": "503"}) == 2
    assert (
        service.registry.get_sample_value(
            "oom_responder_alerts_received_total", {"alertname": "OOMKilled", "status": "firing"}
        )
        == 1
    )


async def test_shutting_down_refuses_webhooks_and_fails_readiness_while_work_drains(
    make_service: ServiceFactory,
) -> None:
    import asyncio  # noqa: PLC0415

    service = await make_service(server={"shutdown_timeout_seconds": 60})
    await _accept_one(service)
    draining = asyncio.create_task(app_mod.begin_shutdown(service.app))
    await asyncio.sleep(0)
    status, body = await _post(service, payloads.payload(OOM_2))
    assert (status, body["error"]) == (503, "shutting down")
    response = await service.client.post(
        "/webhook", data=b"{not json", headers={**AUTH, "Content-Type": "application/json"}
    )
    assert (response.status, (await response.json())["error"]) == (503, "shutting down")
    response = await service.client.get("/readyz")
    assert response.status == 503
    assert (await response.json())["shutting_down"] is True
    assert service.queued() == [OCCURRENCE.format("f1")]
    service.recorder.release.set()
    await draining
    assert [i.event.occurrence_id for i in service.recorder.items] == [OCCURRENCE.format("f1")]


async def test_alerts_alertmanager_left_out_are_logged_counted_and_passed_on_for_the_next_notice(
    make_service: ServiceFactory, caplog: pytest.LogCaptureFixture
) -> None:
    told: list[int] = []
    service = await make_service(on_truncated=told.append)
    body = {**payloads.payload(OOM_1), "truncatedAlerts": 7}
    with caplog.at_level(logging.WARNING, logger="responder.web.receiving"):
        status, counts = await _post(service, body)
    assert (status, counts["accepted"]) == (202, 1)
    assert service.registry.get_sample_value("oom_responder_alerts_truncated_total") == 7
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert record.getMessage() == (
        "Alertmanager left 7 alerts out of this notification (truncatedAlerts): they were not received"
    )
    assert record.truncated_alerts == 7  # type: ignore[attr-defined]
    assert told == [7]
    await _post(service, payloads.payload(OOM_2))
    assert told == [7], "a notification without truncation tells nothing"
    await service.settle()
