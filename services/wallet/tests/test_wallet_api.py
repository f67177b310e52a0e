"""Identity and wallet over HTTP, against real PostgreSQL and Kafka."""

import asyncio
import uuid

import asyncpg
import httpx
import pytest

from shopdev.testing import KafkaProbe, poll
from shopkit.db import asyncpg_dsn as asyncpg_url


async def balance_of(client: httpx.AsyncClient, user_id: str, headers: dict[str, str]) -> int:
    response = await client.get(f"/api/users/{user_id}/balance", headers=headers)
    assert response.status_code == 200, response.text
    return int(response.json()["balance"])


async def ledger(client: httpx.AsyncClient, user_id: str, headers: dict[str, str]) -> list[dict]:
    items: list[dict] = []
    cursor = None
    while True:
        params = {"limit": 100} | ({"cursor": cursor} if cursor else {})
        page = await client.get(
            f"/api/users/{user_id}/balance/transactions", params=params, headers=headers
        )
        assert page.status_code == 200, page.text
        items += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return items


async def test_register_login_charge_and_read(register, wallet: httpx.AsyncClient) -> None:
    user_id, headers = await register(wallet)
    assert await balance_of(wallet, user_id, headers) == 0

    charged = await wallet.post(
        f"/api/users/{user_id}/balance/charge", json={"amount": 5_000}, headers=headers
    )

    assert charged.status_code == 200, charged.text
    assert charged.json()["balance"] == 5_000 and charged.json()["user_id"] == user_id
    assert await balance_of(wallet, user_id, headers) == 5_000
    [entry] = await ledger(wallet, user_id, headers)
    assert (entry["type"], entry["amount"], entry["balance_after"]) == ("CHARGE", 5_000, 5_000)
    assert entry["id"] == charged.json()["transaction_id"]


@pytest.mark.parametrize("amount", [0, -1, -5_000, 1.5, "1000", None, 10_000_001, True])
async def test_invalid_amount_is_refused_and_writes_nothing(
    register, wallet: httpx.AsyncClient, amount: object
) -> None:
    user_id, headers = await register(wallet)

    response = await wallet.post(
        f"/api/users/{user_id}/balance/charge", json={"amount": amount}, headers=headers
    )

    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "INVALID_AMOUNT"
    assert await balance_of(wallet, user_id, headers) == 0
    assert await ledger(wallet, user_id, headers) == []


async def test_the_maximum_charge_is_accepted(register, wallet: httpx.AsyncClient) -> None:
    user_id, headers = await register(wallet)
    response = await wallet.post(
        f"/api/users/{user_id}/balance/charge", json={"amount": 10_000_000}, headers=headers
    )
    assert response.status_code == 200
    assert await balance_of(wallet, user_id, headers) == 10_000_000


async def test_unknown_fields_are_rejected(register, wallet: httpx.AsyncClient) -> None:
    user_id, headers = await register(wallet)
    response = await wallet.post(
        f"/api/users/{user_id}/balance/charge",
        json={"amount": 100, "balance": 10**9},
        headers=headers,
    )
    assert response.status_code == 422
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert await balance_of(wallet, user_id, headers) == 0


async def test_unknown_user_is_404_and_nothing_is_created(
    register,
    wallet: httpx.AsyncClient,
    admin: dict[str, str],
    wallet_db: str,
    kafka: KafkaProbe,
) -> None:
    ghost = str(uuid.uuid4())

    read = await wallet.get(f"/api/users/{ghost}/balance", headers=admin)
    charge = await wallet.post(
        f"/api/users/{ghost}/balance/charge", json={"amount": 1_000}, headers=admin
    )

    assert (read.status_code, read.json()["code"]) == (404, "USER_NOT_FOUND")
    assert (charge.status_code, charge.json()["code"]) == (404, "USER_NOT_FOUND")
    conn = await asyncpg.connect(asyncpg_url(wallet_db))
    try:
        assert await conn.fetchval("SELECT count(*) FROM wallets WHERE user_id = $1", ghost) == 0
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM wallet_transactions WHERE user_id = $1", ghost
            )
            == 0
        )
        assert await conn.fetchval("SELECT count(*) FROM outbox WHERE key = $1", ghost) == 0
    finally:
        await conn.close()
    # A queued message is in the outbox until Kafka has it (then the relay deletes it): read
    # after the outbox, the topic shows whatever the outbox no longer does.
    assert [e for e in await kafka.read_all("wallet.events") if e["key"] == ghost] == []


async def test_100_concurrent_charges_add_up_exactly(register, wallet: httpx.AsyncClient) -> None:
    user_id, headers = await register(wallet)

    responses = await asyncio.gather(
        *[
            wallet.post(
                f"/api/users/{user_id}/balance/charge", json={"amount": 1_000}, headers=headers
            )
            for _ in range(100)
        ]
    )

    assert [r.status_code for r in responses] == [200] * 100
    assert await balance_of(wallet, user_id, headers) == 100_000
    entries = await ledger(wallet, user_id, headers)
    assert len(entries) == 100
    assert sum(e["amount"] for e in entries) == 100_000
    assert sorted(e["balance_after"] for e in entries) == list(range(1_000, 100_001, 1_000))


async def test_idempotency_key_replays_and_refuses_reuse(
    register, wallet: httpx.AsyncClient
) -> None:
    user_id, headers = await register(wallet)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    url = f"/api/users/{user_id}/balance/charge"

    first = await wallet.post(url, json={"amount": 700}, headers=headers | key)
    again = await wallet.post(url, json={"amount": 700}, headers=headers | key)
    other = await wallet.post(url, json={"amount": 800}, headers=headers | key)

    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert (other.status_code, other.json()["code"]) == (422, "IDEMPOTENCY_KEY_REUSED")
    assert await balance_of(wallet, user_id, headers) == 700
    assert len(await ledger(wallet, user_id, headers)) == 1


async def test_a_duplicate_while_the_first_runs_is_409(
    register, wallet: httpx.AsyncClient, wallet_db: str
) -> None:
    user_id, headers = await register(wallet)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    url = f"/api/users/{user_id}/balance/charge"
    blocker = await asyncpg.connect(asyncpg_url(wallet_db))
    tx = blocker.transaction()
    await tx.start()
    # Holding the wallet row keeps the first request inside its work transaction.
    await blocker.execute("SELECT 1 FROM wallets WHERE user_id = $1 FOR UPDATE", user_id)
    first = asyncio.create_task(wallet.post(url, json={"amount": 300}, headers=headers | key))
    try:

        async def claimed() -> int:
            return int(
                await blocker.fetchval(
                    "SELECT count(*) FROM idempotency_keys WHERE key = $1", key["Idempotency-Key"]
                )
            )

        await poll(claimed, until=lambda n: n == 1, message="first request claimed the key")
        duplicate = await wallet.post(url, json={"amount": 300}, headers=headers | key)
        assert (duplicate.status_code, duplicate.json()["code"]) == (409, "IDEMPOTENCY_IN_PROGRESS")
    finally:
        await tx.rollback()
        await blocker.close()
    assert (await first).status_code == 200
    replay = await wallet.post(url, json={"amount": 300}, headers=headers | key)
    assert replay.json() == (await first).json()
    assert await balance_of(wallet, user_id, headers) == 300


async def test_users_act_only_on_their_own_wallet_and_admin_on_any(
    register, wallet: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    alice, alice_headers = await register(wallet, "Alice")
    bob, _ = await register(wallet, "Bob")

    read = await wallet.get(f"/api/users/{bob}/balance", headers=alice_headers)
    charge = await wallet.post(
        f"/api/users/{bob}/balance/charge", json={"amount": 100}, headers=alice_headers
    )
    history = await wallet.get(f"/api/users/{bob}/balance/transactions", headers=alice_headers)
    admin_charge = await wallet.post(
        f"/api/users/{bob}/balance/charge", json={"amount": 100}, headers=admin
    )

    assert [r.status_code for r in (read, charge, history)] == [403, 403, 403]
    assert {r.json()["code"] for r in (read, charge, history)} == {"FORBIDDEN"}
    assert admin_charge.status_code == 200
    assert await balance_of(wallet, bob, admin) == 100
    assert await balance_of(wallet, alice, alice_headers) == 0


async def test_missing_or_bad_token_is_401(register, wallet: httpx.AsyncClient) -> None:
    user_id, _ = await register(wallet)
    none = await wallet.get(f"/api/users/{user_id}/balance")
    bad = await wallet.get(
        f"/api/users/{user_id}/balance", headers={"Authorization": "Bearer not.a.token"}
    )
    assert (none.status_code, bad.status_code) == (401, 401)
    assert bad.json()["code"] == "INVALID_TOKEN"


async def test_registration_and_login_errors(register, wallet: httpx.AsyncClient) -> None:
    email = f"dup-{uuid.uuid4().hex[:8]}@example.com"
    body = {"name": "Dup", "email": email, "password": "long enough"}
    assert (await wallet.post("/api/users", json=body)).status_code == 201
    taken = await wallet.post("/api/users", json=body | {"email": email.upper()})
    wrong = await wallet.post("/api/auth/login", json={"email": email, "password": "nope nope"})
    nobody = await wallet.post("/api/auth/login", json={"email": "x" + email, "password": "x"})
    short = await wallet.post("/api/users", json=body | {"email": "a" + email, "password": "short"})
    assert (taken.status_code, taken.json()["code"]) == (409, "EMAIL_TAKEN")
    assert (wrong.status_code, wrong.json()["code"]) == (401, "INVALID_CREDENTIALS")
    assert (nobody.status_code, nobody.json()["code"]) == (401, "INVALID_CREDENTIALS")
    assert short.status_code == 422


async def test_registration_and_charges_are_published(
    register, wallet: httpx.AsyncClient, kafka: KafkaProbe
) -> None:
    user_id, headers = await register(wallet)
    await wallet.post(
        f"/api/users/{user_id}/balance/charge", json={"amount": 2_500}, headers=headers
    )

    registered = await kafka.wait_for(
        "wallet.events", lambda e: e["type"] == "UserRegistered" and e["key"] == user_id
    )
    charged = await kafka.wait_for(
        "wallet.events", lambda e: e["type"] == "BalanceCharged" and e["key"] == user_id
    )

    assert registered[0]["payload"]["user_id"] == user_id
    assert charged[0]["payload"]["amount"] == 2_500 and charged[0]["payload"]["balance"] == 2_500


async def test_a_nul_character_is_a_clear_422_not_a_500(wallet: httpx.AsyncClient) -> None:
    email = f"nul-{uuid.uuid4().hex[:8]}@example.com"
    response = await wallet.post(
        "/api/users", json={"name": "bad\x00name", "email": email, "password": "long enough"}
    )
    assert (response.status_code, response.json()["code"]) == (422, "INVALID_CHARACTER")
    login = await wallet.post("/api/auth/login", json={"email": email, "password": "long enough"})
    assert login.status_code == 401
