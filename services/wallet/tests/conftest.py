import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import httpx
import pytest

from shopdev.testing import Infra, create_database, serve, session_keys, settings_for, unique_name
from shopkit.db import Database
from wallet.main import build_app
from wallet.settings import Settings

SERVICE_DIR = Path(__file__).resolve().parents[1]
ADMIN_EMAIL = "admin@shop.local"
ADMIN_PASSWORD = secrets.token_urlsafe(16)


@pytest.fixture(scope="session")
async def wallet_db(infra: Infra) -> str:
    return await create_database(infra, SERVICE_DIR, unique_name("wallet"))


@pytest.fixture(scope="session")
async def wallet(
    infra: Infra, kafka_namespace: str, wallet_db: str
) -> AsyncIterator[httpx.AsyncClient]:
    settings = settings_for(
        Settings,
        infra,
        kafka_namespace=kafka_namespace,
        database_url=wallet_db,
        admin_password=ADMIN_PASSWORD,
        argon2_time_cost=1,
        argon2_memory_kib=1024,
        jwt_private_key=session_keys().private_key,
    )
    async with serve(build_app(settings)) as client:
        yield client


Register = Callable[..., Awaitable[tuple[str, dict[str, str]]]]


@pytest.fixture(scope="session")
def register() -> Register:
    return register_user


async def register_user(client: httpx.AsyncClient, name: str = "Kim") -> tuple[str, dict[str, str]]:
    """A new user's id and auth headers."""
    email = f"{name.lower()}-{uuid.uuid4().hex[:8]}@example.com"
    created = await client.post(
        "/api/users", json={"name": name, "email": email, "password": "correct horse"}
    )
    assert created.status_code == 201, created.text
    login = await client.post("/api/auth/login", json={"email": email, "password": "correct horse"})
    assert login.status_code == 200, login.text
    return created.json()["id"], {"Authorization": f"Bearer {login.json()['access_token']}"}


@pytest.fixture(scope="session")
async def admin(wallet: httpx.AsyncClient) -> dict[str, str]:
    login = await wallet.post(
        "/api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    )
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


@pytest.fixture
async def db(wallet_db: str) -> AsyncIterator[Database]:
    database = Database(wallet_db)
    yield database
    await database.dispose()


OpenWallets = Callable[[asyncpg.Connection, dict[str, int | None]], Awaitable[None]]


@pytest.fixture(scope="session")
def open_wallets() -> OpenWallets:
    return insert_wallets


async def insert_wallets(tx: asyncpg.Connection, balances: dict[str, int | None]) -> None:
    """Users holding these balances, written straight to the tables (None: a user id with no
    wallet at all)."""
    held = {u: b for u, b in balances.items() if b is not None}
    await tx.execute(
        "INSERT INTO users (id, name, email, password_hash, role)"
        " SELECT u, 'Kim', u || '@example.com', 'unused', 'user' FROM unnest($1::text[]) u",
        list(held),
    )
    await tx.execute(
        "INSERT INTO wallets (user_id, balance) SELECT * FROM unnest($1::text[], $2::bigint[])",
        list(held),
        list(held.values()),
    )
