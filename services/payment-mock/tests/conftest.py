from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from payment_mock.main import build_app
from payment_mock.settings import Settings
from shopdev.testing import Infra, create_database, serve, session_keys, settings_for, unique_name

SERVICE_DIR = Path(__file__).resolve().parents[1]
DEFAULTS = {"decline_rate": 0, "timeout_rate": 0, "latency_ms": 0}


@pytest.fixture(scope="session")
async def payment_db(infra: Infra) -> str:
    return await create_database(infra, SERVICE_DIR, unique_name("payment-mock"))


@pytest.fixture(scope="session")
def settings(infra: Infra, kafka_namespace: str, payment_db: str) -> Settings:
    return settings_for(
        Settings,
        infra,
        kafka_namespace=kafka_namespace,
        database_url=payment_db,
        timeout_hang_seconds=1.0,
        random_seed=7,
        merchant_key=session_keys().merchant_key,
    )


@pytest.fixture(scope="session")
async def payments(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(build_app(settings)) as client:
        yield client


@pytest.fixture(scope="session")
def merchant() -> dict[str, str]:
    """The shop's merchant credential: what the order service sends."""
    return {"X-Merchant-Key": session_keys().merchant_key}


@pytest.fixture(scope="session")
def admin() -> dict[str, str]:
    return session_keys().headers("shop-admin", "admin")


@pytest.fixture(scope="session")
def user() -> dict[str, str]:
    return session_keys().headers("kim")


@pytest.fixture
async def behave(
    payments: httpx.AsyncClient, admin: dict[str, str]
) -> AsyncIterator[Callable[..., Awaitable[None]]]:
    """Set the provider's behavior for one test; back to the defaults afterwards."""

    async def set_behavior(**knobs: float) -> None:
        answer = await payments.put("/api/payments/behavior", json=knobs, headers=admin)
        assert answer.status_code == 200, answer.text

    yield set_behavior
    await set_behavior(**DEFAULTS)
