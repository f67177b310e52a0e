import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from coupon.main import build_app
from coupon.settings import Settings
from shopdev.testing import Infra, create_database, serve, session_keys, unique_name
from shopkit.clock import FrozenClock
from shopkit.db import asyncpg_dsn

SERVICE_DIR = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
async def coupon_db(infra: Infra) -> str:
    return await create_database(infra, SERVICE_DIR, unique_name("coupon"))


@pytest.fixture(scope="session")
def settings(infra: Infra, kafka_namespace: str, coupon_db: str) -> Settings:
    return Settings(
        database_url=coupon_db,
        kafka_bootstrap=infra.kafka_bootstrap,
        kafka_namespace=kafka_namespace,
        user_wait_seconds=0.5,
        log_json=False,
        log_level="WARNING",
        jwt_public_keys=session_keys().public_keys,
    )


@pytest.fixture(scope="session")
def clock() -> FrozenClock:
    """The service's clock; a test that moves it must move it back."""
    return FrozenClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture(scope="session")
async def coupons(settings: Settings, clock: FrozenClock) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(build_app(settings, clock=clock)) as client:
        yield client


@pytest.fixture(scope="session")
def token_for() -> Callable[..., dict[str, str]]:
    return session_keys().headers


@pytest.fixture(scope="session")
def admin(token_for: Callable[..., dict[str, str]]) -> dict[str, str]:
    return token_for(f"admin-{uuid.uuid4().hex[:8]}", "admin")


NewCoupon = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture(scope="session")
def new_coupon(coupons: httpx.AsyncClient, admin: dict[str, str]) -> NewCoupon:
    async def create(**fields: Any) -> dict[str, Any]:
        body = {
            "name": f"coupon {uuid.uuid4().hex[:6]}",
            "discount_type": "FIXED",
            "discount_value": 1_000,
            "total_quantity": 10,
        } | fields
        response = await coupons.post("/api/coupons", json=body, headers=admin)
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    return create


Query = Callable[..., Awaitable[Any]]


@pytest.fixture(scope="session")
def sql(coupon_db: str) -> Query:
    """Run one query against the coupon database and return its rows."""

    async def run(query: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(asyncpg_dsn(coupon_db))
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()

    return run


def new_id() -> str:
    return str(uuid.uuid4())
