from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from order.main import build_app
from order.settings import Settings
from shopdev.testing import (
    Infra,
    KafkaProbe,
    create_database,
    new_namespace,
    serve,
    session_keys,
    settings_for,
    unique_name,
)
from shopkit.auth import Role
from shopkit.db import Database

SERVICE_DIR = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
async def kafka_namespace(infra: Infra) -> str:
    """Our own namespace: these tests play catalog, coupon and wallet, and the real ones, run
    in-process by their own tests in this session, must not answer the same commands."""
    return await new_namespace(infra, "o")


@pytest.fixture(scope="session")
def kafka(infra: Infra, kafka_namespace: str) -> KafkaProbe:
    return KafkaProbe(infra.kafka_bootstrap, kafka_namespace)


@pytest.fixture(scope="session")
async def order_db(infra: Infra) -> str:
    return await create_database(infra, SERVICE_DIR, unique_name("order"))


@pytest.fixture
async def own_db(infra: Infra) -> AsyncIterator[Database]:
    """A database of its own: the module's running order app never consumes for, leases or
    scans these orders."""
    db = Database(await create_database(infra, SERVICE_DIR, unique_name("order")))
    yield db
    await db.dispose()


@pytest.fixture(scope="session")
def settings(infra: Infra, kafka_namespace: str, order_db: str) -> Settings:
    return settings_for(
        Settings,
        infra,
        kafka_namespace=kafka_namespace,
        database_url=order_db,
        # No provider in these tests: the worker finds nothing listening and retries.
        payment_url="http://127.0.0.1:9",
        step_timeout_seconds=3.0,
        max_step_attempts=2,
        max_compensation_attempts=2,
        scan_interval_seconds=0.2,
        merchant_key=session_keys().merchant_key,
    )


@pytest.fixture(scope="session")
async def order(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(build_app(settings)) as client:
        yield client


def headers_for(settings: Settings, user_id: str, role: Role = "user") -> dict[str, str]:
    return session_keys().headers(user_id, role)
