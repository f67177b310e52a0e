from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from payment_mock.main import build_app
from payment_mock.settings import Settings
from shopkit.auth import issue_token
from shopkit.testing import Infra, create_database, serve, unique_name

SERVICE_DIR = Path(__file__).resolve().parents[1]
DEFAULTS = {"decline_rate": 0, "timeout_rate": 0, "latency_ms": 0}


@pytest.fixture(scope="session")
async def payment_db(infra: Infra) -> str:
    return await create_database(infra, SERVICE_DIR, unique_name("payment-mock"))


@pytest.fixture(scope="session")
def settings(infra: Infra, kafka_namespace: str, payment_db: str) -> Settings:
    return Settings(
        database_url=payment_db,
        kafka_bootstrap=infra.kafka_bootstrap,
        kafka_namespace=kafka_namespace,
        timeout_hang_seconds=1.0,
        random_seed=7,
        log_json=False,
    )


@pytest.fixture(scope="session")
async def payments(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(build_app(settings)) as client:
        yield client


@pytest.fixture(scope="session")
def admin(settings: Settings) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(settings, user_id='order-svc', role='admin')}"}


@pytest.fixture(scope="session")
def user(settings: Settings) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(settings, user_id='kim', role='user')}"}


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
