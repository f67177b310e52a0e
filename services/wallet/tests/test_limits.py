"""Abuse limits and bounded password hashing in the wallet, with limits on and a frozen clock."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest

from shopdev.testing import Infra, create_database, new_namespace, serve, session_keys, unique_name
from shopkit.clock import FrozenClock
from shopkit.db import asyncpg_dsn
from shopkit.errors import Problem
from shopkit.limits import Rule
from wallet.main import build_app
from wallet.passwords import Passwords
from wallet.settings import Settings

from .conftest import SERVICE_DIR

PASSWORD = "correct horse"


@pytest.fixture(scope="module")
async def limited_db(infra: Infra) -> str:
    return await create_database(infra, SERVICE_DIR, unique_name("wallet"))


@pytest.fixture(scope="module")
async def settings(infra: Infra, limited_db: str) -> Settings:
    return Settings(
        database_url=limited_db,
        kafka_bootstrap=infra.kafka_bootstrap,
        kafka_namespace=await new_namespace(infra, "wl"),
        argon2_time_cost=1,
        argon2_memory_kib=1024,
        log_json=False,
        jwt_public_keys=session_keys().public_keys,
        jwt_private_key=session_keys().private_key,
        rate_limits=True,
        limit_login_failures_per_account=Rule(3, 60, lockout=30),
        limit_login_failures_per_address=Rule(6, 60, lockout=30),
        limit_registrations_per_address=Rule(3, 60),
        limit_charges_per_user=Rule(2, 60),
    )


@pytest.fixture(scope="module")
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 5, 1, 12, 0, tzinfo=UTC))


@pytest.fixture(scope="module")
async def wallet(settings: Settings, clock: FrozenClock) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(build_app(settings, clock=clock)) as client:
        yield client


def address() -> dict[str, str]:
    """Headers as the gateway sets them for a client address of this test's own."""
    return {"X-Real-IP": f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.7"}


async def register(client: httpx.AsyncClient) -> tuple[str, str]:
    email = f"lim-{uuid.uuid4().hex[:10]}@example.com"
    created = await client.post(
        "/api/users",
        json={"name": "Lim", "email": email, "password": PASSWORD},
        headers=address(),
    )
    assert created.status_code == 201, created.text
    return created.json()["id"], email


async def login(
    client: httpx.AsyncClient, email: str, password: str, headers: dict[str, str]
) -> httpx.Response:
    return await client.post(
        "/api/auth/login", json={"email": email, "password": password}, headers=headers
    )


def assert_rate_limited(response: httpx.Response) -> int:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "RATE_LIMITED"
    return int(response.headers["Retry-After"])


async def test_a_login_burst_locks_the_account_until_the_window_passes(
    wallet: httpx.AsyncClient, clock: FrozenClock
) -> None:
    _, email = await register(wallet)
    answers = [(await login(wallet, email, "wrong", address())).status_code for _ in range(10)]
    assert answers == [401] * 3 + [429] * 7

    locked = await login(wallet, email, PASSWORD, address())  # even the right one, while locked
    retry_after = assert_rate_limited(locked)
    assert 1 <= retry_after <= 30

    clock.advance(seconds=retry_after)
    assert (await login(wallet, email, PASSWORD, address())).status_code == 200
    # A correct login forgives the account: a typo afterwards is a plain 401 again.
    assert (await login(wallet, email, "wrong", address())).status_code == 401


async def test_a_concurrent_burst_on_one_account_gets_only_the_rules_count_checked(
    wallet: httpx.AsyncClient,
) -> None:
    _, email = await register(wallet)
    answers = await asyncio.gather(*[login(wallet, email, "wrong", address()) for _ in range(10)])
    assert sorted(a.status_code for a in answers) == [401] * 3 + [429] * 7


async def test_each_lockout_of_an_account_is_longer_than_the_last(
    wallet: httpx.AsyncClient, clock: FrozenClock
) -> None:
    _, email = await register(wallet)
    waits = []
    for _ in range(3):
        while (answer := await login(wallet, email, "wrong", address())).status_code == 401:
            pass
        waits.append(assert_rate_limited(answer))
        clock.advance(seconds=waits[-1])
    assert waits[0] < waits[1] < waits[2], waits


async def test_failed_logins_from_one_address_are_limited_across_accounts(
    wallet: httpx.AsyncClient, clock: FrozenClock
) -> None:
    emails = [(await register(wallet))[1] for _ in range(4)]
    attacker, other = address(), address()
    answers = [
        (await login(wallet, email, "wrong", attacker)).status_code
        for email in emails
        for _ in range(2)
    ]
    assert answers == [401] * 6 + [429] * 2
    assert_rate_limited(await login(wallet, emails[0], PASSWORD, attacker))
    # Another address logs in to the same account.
    assert (await login(wallet, emails[0], PASSWORD, other)).status_code == 200


async def test_registrations_per_address_are_limited_and_the_refused_create_nothing(
    wallet: httpx.AsyncClient, clock: FrozenClock, limited_db: str
) -> None:
    here = address()
    emails = [f"reg-{uuid.uuid4().hex[:10]}@example.com" for _ in range(5)]
    answers = []
    for email in emails:
        body = {"name": "Reg", "email": email, "password": PASSWORD}
        answers.append(await wallet.post("/api/users", json=body, headers=here))
    assert [a.status_code for a in answers] == [201, 201, 201, 429, 429]
    assert_rate_limited(answers[3])
    conn = await asyncpg.connect(asyncpg_dsn(limited_db))
    try:
        stored = await conn.fetchval(
            "SELECT count(*) FROM users WHERE email = ANY($1::text[])", emails
        )
    finally:
        await conn.close()
    assert stored == 3

    clock.advance(seconds=20)  # one registration per 20 s comes back
    body = {"name": "Reg", "email": emails[3], "password": PASSWORD}
    assert (await wallet.post("/api/users", json=body, headers=here)).status_code == 201


async def test_charges_per_user_are_limited_and_the_refused_change_nothing(
    wallet: httpx.AsyncClient, clock: FrozenClock
) -> None:
    user_id, email = await register(wallet)
    token = (await login(wallet, email, PASSWORD, address())).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    path = f"/api/users/{user_id}/balance/charge"
    answers = [await wallet.post(path, json={"amount": 1_000}, headers=headers) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 429, 429]
    assert_rate_limited(answers[2])
    balance = await wallet.get(f"/api/users/{user_id}/balance", headers=headers)
    assert balance.json()["balance"] == 2_000
    ledger = await wallet.get(f"/api/users/{user_id}/balance/transactions", headers=headers)
    assert len(ledger.json()["items"]) == 2


async def test_with_limits_off_nothing_is_rate_limited(infra: Infra, settings: Settings) -> None:
    off = settings.model_copy(
        update={"rate_limits": False, "kafka_namespace": await new_namespace(infra, "wo")}
    )
    async with serve(build_app(off)) as client:
        _, email = await register(client)
        here = address()
        answers = {(await login(client, email, "wrong", here)).status_code for _ in range(12)}
        assert answers == {401}
        assert (await login(client, email, PASSWORD, here)).status_code == 200


async def test_hashing_beyond_its_queue_is_refused_with_503_rather_than_queued() -> None:
    passwords = Passwords(time_cost=1, memory_kib=1024, concurrency=1, queue=2)
    outcomes = await asyncio.gather(
        *[passwords.hash(f"password-{i}") for i in range(8)], return_exceptions=True
    )
    refused = [o for o in outcomes if isinstance(o, Problem)]
    assert sum(isinstance(o, str) for o in outcomes) == 3
    assert len(refused) == 5
    assert {(p.status, p.code, p.headers["Retry-After"]) for p in refused} == {
        (503, "SERVICE_UNAVAILABLE", "1")
    }
    # Room again once those are done.
    assert await passwords.verify(await passwords.hash("again-password"), "again-password")


async def test_a_registration_flood_gets_201_or_503_never_an_error(
    infra: Infra, settings: Settings
) -> None:
    flood = settings.model_copy(
        update={
            "rate_limits": False,
            "hash_concurrency": 1,
            "hash_queue": 1,
            "argon2_time_cost": 20,  # a hash long enough for the flood to find the queue full
            "kafka_namespace": await new_namespace(infra, "wf"),
        }
    )
    async with serve(build_app(flood)) as client:
        bodies = [
            {"name": "F", "email": f"f-{uuid.uuid4().hex[:10]}@example.com", "password": PASSWORD}
            for _ in range(20)
        ]
        answers = await asyncio.gather(*[client.post("/api/users", json=b) for b in bodies])
    codes = [a.status_code for a in answers]
    assert set(codes) <= {201, 503} and 201 in codes and 503 in codes, codes
    assert all(a.headers["Retry-After"] == "1" for a in answers if a.status_code == 503)
