"""The application around the webhook: probes, metrics and error rendering.

Covers: /healthz; /readyz passes the readiness detail through and fails when the pipeline is not ready;
/metrics exposes the service's metrics; unknown routes and methods, and unexpected exceptions, are JSON errors.
"""

from __future__ import annotations

from aiohttp import web

from tests.unit.web.conftest import ServiceFactory


async def test_healthz_answers(make_service: ServiceFactory) -> None:
    service = await make_service()
    response = await service.client.get("/healthz")
    assert (response.status, await response.json()) == (200, {"alive": True})


async def test_readyz_explains_what_it_cannot_do(make_service: ServiceFactory) -> None:
    service = await make_service()
    response = await service.client.get("/readyz")
    body = await response.json()
    assert response.status == 200
    assert body["ready"] is True
    assert body["cluster"] == "unavailable: planning from labels only"
    assert body["queue"] == {"pending": 0, "max_pending": 10000}


async def test_readyz_fails_when_the_pipeline_is_not_ready(make_service: ServiceFactory) -> None:
    service = await make_service(ready=False)
    response = await service.client.get("/readyz")
    assert response.status == 503
    assert (await response.json())["ready"] is False


async def test_metrics_are_exposed(make_service: ServiceFactory) -> None:
    service = await make_service()
    await service.client.post("/webhook", json={})
    response = await service.client.get("/metrics")
    text = await response.text()
    assert response.status == 200
    assert 'oom_responder_webhook_requests_total{code="401"} 1.0' in text
    assert 'oom_responder_build_info{version="0.1.0"} 1.0' in text


async def test_unknown_routes_and_methods_are_json_errors(make_service: ServiceFactory) -> None:
    service = await make_service()
    response = await service.client.get("/nope")
    assert (response.status, await response.json()) == (404, {"error": "not found", "detail": []})
    response = await service.client.post("/healthz")
    assert response.status == 405
    assert (await response.json())["error"] == "method not allowed"
    assert "GET" in response.headers["Allow"]


async def test_an_unexpected_exception_is_a_logged_json_500(make_service: ServiceFactory) -> None:
    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("bug")

    service = await make_service()
    service.app.router._frozen = False  # test-only route on a started app
    service.app.router.add_get("/broken", broken)
    response = await service.client.get("/broken")
    assert response.status == 500
    assert (await response.json())["error"] == "internal error"
