"""FastAPI's native OpenTelemetry: off unless SHOP_OTEL asks for it."""

from typing import Any

import httpx
import pytest
from fastapi import APIRouter
from opentelemetry import trace

from shopkit.app import create_app
from shopkit.settings import ServiceSettings

router = APIRouter()


@router.get("/ping")
async def ping() -> dict[str, str]:
    return {"pong": "yes"}


async def provider_lookups(monkeypatch: pytest.MonkeyPatch, *, otel: bool) -> tuple[int, int]:
    """(status of GET /ping, how often FastAPI asked for the global tracer provider)."""
    asked = 0
    real = trace.get_tracer_provider

    def counting() -> Any:
        nonlocal asked
        asked += 1
        return real()

    monkeypatch.setattr(trace, "get_tracer_provider", counting)
    app = create_app(ServiceSettings(otel=otel), title="t", routers=[router])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        response = await client.get("/ping")
    return response.status_code, asked


async def test_requests_skip_opentelemetry_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert await provider_lookups(monkeypatch, otel=False) == (200, 0)


async def test_otel_on_looks_for_a_configured_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    status, asked = await provider_lookups(monkeypatch, otel=True)
    assert status == 200 and asked >= 1
