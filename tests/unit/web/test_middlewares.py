"""Refused webhooks are logged so the operator can see why alerts do not arrive.

Aspects covered: a wrong token (401), a body over the limit (413), a wrong content type (415) and a payload
that is not Alertmanager's (422) each give one `webhook rejected` warning with the status, the sender's address
and the reason; repeats from the same sender within the window are not logged again but counted in the next
line after the window; another sender or another status is logged at once. The clock is injected.
"""

from __future__ import annotations

import json
import logging

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from responder.web import middlewares
from tests.unit import payloads
from tests.unit.web.conftest import AUTH, ServiceFactory


def _rejections(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == "webhook rejected"]


async def test_each_kind_of_refusal_is_logged_with_sender_and_reason(
    make_service: ServiceFactory, caplog: pytest.LogCaptureFixture
) -> None:
    service = await make_service(server={"max_body_bytes": 2048})
    body = payloads.payload(payloads.alert())
    with caplog.at_level(logging.WARNING, logger="responder.web.middlewares"):
        for _ in range(3):
            response = await service.client.post(
                "/webhook", json=body, headers={"Authorization": "Bearer mistyped"}
            )
            assert response.status == 401
        response = await service.client.post(
            "/webhook", data=b"{" + b" " * 4096 + b"}", headers={**AUTH, "Content-Type": "application/json"}
        )
        assert response.status == 413
        response = await service.client.post(
            "/webhook", data=json.dumps(body), headers={**AUTH, "Content-Type": "text/plain"}
        )
        assert response.status == 415
        response = await service.client.post("/webhook", json={"version": "4"}, headers=AUTH)
        assert response.status == 422
    records = _rejections(caplog)
    assert [r.status for r in records] == [401, 413, 415, 422]  # type: ignore[attr-defined] # logging extra
    assert {r.sender for r in records} == {"127.0.0.1"}  # type: ignore[attr-defined] # logging extra
    reasons = {r.status: r.reason for r in records}  # type: ignore[attr-defined] # logging extra
    assert reasons[401] == "unauthorized"
    assert reasons[415] == "unsupported content type"
    assert reasons[422] == "not an Alertmanager webhook payload"
    assert "alerts" in " ".join(records[3].detail)  # type: ignore[attr-defined] # logging extra


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _request(remote: str) -> web.Request:
    return make_mocked_request(
        "POST", "/webhook", headers={"X-Forwarded-For": "10.9.8.7"}, transport=_Peer(remote)
    )


class _Peer:
    """The part of an asyncio transport aiohttp reads the peer address from."""

    def __init__(self, remote: str) -> None:
        self.remote = remote

    def get_extra_info(self, name: str, default: object = None) -> object:
        return (self.remote, 40000) if name == "peername" else default


def test_repeats_within_the_window_are_counted_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    log = middlewares.RejectionLog(window_seconds=60, clock=clock)
    unauthorized = middlewares.json_error(web.HTTPUnauthorized, "unauthorized", ["send a token"])
    with caplog.at_level(logging.WARNING, logger="responder.web.middlewares"):
        log.record(_request("10.0.0.1"), unauthorized)
        for _ in range(4):
            clock.now += 10
            log.record(_request("10.0.0.1"), unauthorized)
        log.record(_request("10.0.0.2"), unauthorized)  # another sender: logged at once
        clock.now += 30  # 70 s after the first line
        log.record(_request("10.0.0.1"), unauthorized)
    records = _rejections(caplog)
    assert [(r.sender, r.repeats_not_logged) for r in records] == [  # type: ignore[attr-defined] # extra
        ("10.0.0.1", 0),
        ("10.0.0.2", 0),
        ("10.0.0.1", 4),
    ]
    assert records[0].forwarded_for == "10.9.8.7"  # type: ignore[attr-defined] # logging extra
    assert records[0].detail == ["send a token"]  # type: ignore[attr-defined] # logging extra
