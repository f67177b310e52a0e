"""The HTTP metrics: one series per route template and status class, whatever the raw paths."""

import httpx
from fastapi import APIRouter, FastAPI

from shopkit.app import create_app
from shopkit.errors import Problem
from shopkit.settings import ServiceSettings

router = APIRouter()


@router.get("/things/{thing_id}")
async def thing(thing_id: str) -> dict[str, str]:
    if thing_id == "missing":
        raise Problem(404, "THING_NOT_FOUND", "no such thing")
    return {"id": thing_id}


@router.get("/broken")
async def broken() -> None:
    raise RuntimeError("a bug")


def count(app: FastAPI, method: str, route: str, status: str) -> float | None:
    return app.state.metrics.registry.get_sample_value(
        "shop_http_request_duration_seconds_count",
        {"method": method, "route": route, "status": status},
    )


async def test_requests_are_counted_by_route_template_and_status_class() -> None:
    app = create_app(ServiceSettings(), title="t", routers=[router])
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for thing_id in ("a", "b", "c", "missing"):
            await client.get(f"/things/{thing_id}")
        await client.get("/nowhere/123")
        await client.get("/broken")
        await client.request("BREW", "/things/a")

    assert count(app, "GET", "/things/{thing_id}", "2xx") == 3
    assert count(app, "GET", "/things/{thing_id}", "4xx") == 1
    assert count(app, "GET", "unmatched", "4xx") == 1
    assert count(app, "GET", "/broken", "5xx") == 1
    assert count(app, "OTHER", "/things/{thing_id}", "4xx") == 1  # 405: methods stay bounded
    samples = app.state.metrics.registry.get_sample_value(
        "shop_http_request_duration_seconds_sum",
        {"method": "GET", "route": "/things/{thing_id}", "status": "2xx"},
    )
    assert samples is not None and samples > 0


async def test_metrics_are_served_directly_and_refused_through_a_proxy() -> None:
    app = create_app(ServiceSettings(), title="t", routers=[router])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        forwarded = await client.get("/metrics", headers={"X-Real-IP": "203.0.113.9"})
        await client.get("/things/a")
        direct = await client.get("/metrics")
    assert forwarded.status_code == 404
    assert direct.status_code == 200 and direct.headers["content-type"].startswith("text/plain")
    assert 'shop_http_request_duration_seconds_count{method="GET"' in direct.text
