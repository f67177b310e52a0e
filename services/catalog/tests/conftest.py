import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from catalog.main import build_app
from catalog.settings import Settings
from shopdev.testing import Infra, create_database, serve, session_keys, settings_for, unique_name
from shopkit.clock import FrozenClock

SERVICE_DIR = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
async def catalog_db(infra: Infra) -> str:
    return await create_database(infra, SERVICE_DIR, unique_name("catalog"))


@pytest.fixture(scope="session")
def catalog_settings(infra: Infra, kafka_namespace: str, catalog_db: str) -> Settings:
    return settings_for(
        Settings,
        infra,
        kafka_namespace=kafka_namespace,
        database_url=catalog_db,
    )


@pytest.fixture(scope="session")
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 1, 5, 9, 0, tzinfo=UTC))


@pytest.fixture(scope="session")
async def catalog(
    catalog_settings: Settings, clock: FrozenClock
) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(build_app(catalog_settings, clock=clock)) as client:
        yield client


@pytest.fixture(scope="session")
def admin() -> dict[str, str]:
    return session_keys().headers(str(uuid.uuid4()), "admin")


@pytest.fixture(scope="session")
def user() -> dict[str, str]:
    return session_keys().headers(str(uuid.uuid4()))


CreateProduct = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def create_product(catalog: httpx.AsyncClient, admin: dict[str, str]) -> CreateProduct:
    async def create(**fields: Any) -> dict[str, Any]:
        body = {
            "name": f"product {uuid.uuid4().hex[:6]}",
            "category": "BOOKS",
            "price": 10_000,
            "stock": 10,
            "description": "",
        } | fields
        response = await catalog.post("/api/products", json=body, headers=admin)
        assert response.status_code == 201, response.text
        return dict(response.json())

    return create


@pytest.fixture
def tag() -> str:
    """A token to put in product names, so a test can list only its own products (q=tag)."""
    return f"z{uuid.uuid4().hex[:10]}"
