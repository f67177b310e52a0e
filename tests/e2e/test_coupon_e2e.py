"""Coupons end to end: first-come-first-served bursts and checkout, every service a process."""

import asyncio
import uuid
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from shopdev.testing import poll, session_keys
from shopkit.db import asyncpg_dsn

from .conftest import Stack, User, log_tail

pytestmark = pytest.mark.e2e


def headers_for(stack: Stack, user_id: str) -> dict[str, str]:
    """A signed token for any user id: the coupon service trusts the token's own subject."""
    return session_keys().headers(user_id)


async def new_coupon(stack: Stack, **fields: Any) -> dict[str, Any]:
    body = {
        "name": f"e2e {uuid.uuid4().hex[:6]}",
        "discount_type": "FIXED",
        "discount_value": 1_000,
        "total_quantity": 100,
    } | fields
    response = await stack.client.post("/api/coupons", json=body, headers=stack.admin)
    assert response.status_code == 201, response.text + log_tail(stack, "coupon")
    return dict(response.json())


async def ask(
    stack: Stack, coupon_id: str, user_id: str, headers: dict[str, str]
) -> httpx.Response:
    return await stack.client.post(
        f"/api/coupons/{coupon_id}/issue", json={"user_id": user_id}, headers=headers
    )


def outcomes(responses: list[httpx.Response]) -> Counter[str]:
    return Counter(r.json().get("code") or r.json()["status"] for r in responses)


async def issued_quantity(stack: Stack, coupon_id: str, count: int) -> int:
    async def read() -> int:
        response = await stack.client.get(f"/api/coupons/{coupon_id}", headers=stack.admin)
        return int(response.json()["issued_quantity"])

    return await poll(read, until=lambda n: n >= count, timeout=20, message="places issued")


async def coupon_rows(stack: Stack, coupon_id: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(asyncpg_dsn(stack.db_url("coupon")))
    try:
        return await conn.fetch(
            "SELECT user_id, status, position FROM user_coupons WHERE coupon_id = $1", coupon_id
        )
    finally:
        await conn.close()


async def test_1000_users_at_once_for_100_coupons_and_pending_settles(stack: Stack) -> None:
    coupon = await new_coupon(stack, total_quantity=100)
    users = [str(uuid.uuid4()) for _ in range(1_000)]

    responses = await asyncio.gather(
        *[ask(stack, coupon["id"], u, headers_for(stack, u)) for u in users]
    )

    assert outcomes(responses) == {"PENDING": 100, "SOLD_OUT": 900}
    assert await issued_quantity(stack, coupon["id"], 100) == 100
    rows = await coupon_rows(stack, coupon["id"])
    assert [r["status"] for r in rows] == ["ISSUED"] * 100
    assert len({r["user_id"] for r in rows}) == 100
    assert sorted(r["position"] for r in rows) == list(range(1, 101))
    winner = rows[0]["user_id"]
    listed = await stack.client.get(
        f"/api/users/{winner}/coupons", headers=headers_for(stack, winner)
    )
    [mine] = listed.json()["items"]
    assert mine["status"] == "ISSUED"
    issued_at = datetime.fromisoformat(mine["issued_at"])
    assert datetime.fromisoformat(mine["expires_at"]) == issued_at + timedelta(days=30)


async def test_one_user_sending_50_requests_gets_one(stack: Stack) -> None:
    coupon, me = await new_coupon(stack), str(uuid.uuid4())
    headers = headers_for(stack, me)

    responses = await asyncio.gather(*[ask(stack, coupon["id"], me, headers) for _ in range(50)])

    assert outcomes(responses) == {"PENDING": 1, "ALREADY_ISSUED": 49}
    assert await issued_quantity(stack, coupon["id"], 1) == 1


async def test_200_users_sending_5_requests_each_for_100(stack: Stack) -> None:
    coupon = await new_coupon(stack, total_quantity=100)
    users = [str(uuid.uuid4()) for _ in range(200)]

    responses = await asyncio.gather(
        *[ask(stack, coupon["id"], u, headers_for(stack, u)) for u in users for _ in range(5)]
    )

    assert outcomes(responses)["PENDING"] == 100
    assert await issued_quantity(stack, coupon["id"], 100) == 100
    rows = await coupon_rows(stack, coupon["id"])
    assert len(rows) == 100 and len({r["user_id"] for r in rows}) == 100


async def test_several_single_coupons_contested_at_once(stack: Stack) -> None:
    singles = [await new_coupon(stack, total_quantity=1) for _ in range(4)]
    users = [str(uuid.uuid4()) for _ in range(30)]

    responses = await asyncio.gather(
        *[ask(stack, c["id"], u, headers_for(stack, u)) for c in singles for u in users]
    )

    assert outcomes(responses) == {"PENDING": 4, "SOLD_OUT": 116}
    for coupon in singles:
        assert await issued_quantity(stack, coupon["id"], 1) == 1
        assert len(await coupon_rows(stack, coupon["id"])) == 1


async def holding(stack: Stack, user: User, **terms: Any) -> str:
    """An ISSUED user coupon of `user`, with these terms."""
    coupon = await new_coupon(stack, **terms)
    response = await stack.client.post(
        f"/api/coupons/{coupon['id']}/issue",
        params={"wait": "true"},
        json={"user_id": user.id},
        headers=user.headers,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def checkout(
    stack: Stack, user: User, product: str, quantity: int, coupon_id: str
) -> dict[str, Any]:
    body = {
        "user_id": user.id,
        "items": [{"product_id": product, "quantity": quantity}],
        "coupon_id": coupon_id,
    }
    response = await stack.client.post(
        "/api/orders", params={"wait": "true"}, json=body, headers=user.headers
    )
    assert response.status_code == 200, response.text + log_tail(stack, "order")
    return dict(response.json())


async def coupon_status(stack: Stack, user: User, user_coupon_id: str) -> str:
    listed = await stack.client.get(
        f"/api/users/{user.id}/coupons", params={"limit": 100}, headers=user.headers
    )
    [found] = [c for c in listed.json()["items"] if c["id"] == user_coupon_id]
    return str(found["status"])


async def test_fixed_and_percent_discounts_at_checkout(stack: Stack) -> None:
    user = await stack.new_user(balance=200_000)
    fixed = await holding(stack, user, discount_type="FIXED", discount_value=3_000)
    percent = await holding(stack, user, discount_type="PERCENT", discount_value=10)
    product = await stack.new_product(price=10_000, stock=20)

    first = await checkout(stack, user, product, 2, fixed)
    second = await checkout(stack, user, product, 11, percent)

    assert (first["status"], first["discount"], first["total"]) == ("PAID", 3_000, 17_000)
    assert (second["status"], second["discount"], second["total"]) == ("PAID", 11_000, 99_000)
    assert await stack.balance(user) == 200_000 - 17_000 - 99_000
    assert await coupon_status(stack, user, fixed) == "USED"


async def test_the_same_coupon_in_5_concurrent_orders_pays_once(stack: Stack) -> None:
    user = await stack.new_user(balance=500_000)
    coupon = await holding(stack, user)
    product = await stack.new_product(price=10_000, stock=50)

    orders = await asyncio.gather(*[checkout(stack, user, product, 1, coupon) for _ in range(5)])

    assert sorted(o["status"] for o in orders) == ["FAILED"] * 4 + ["PAID"]
    assert {o["failure_code"] for o in orders if o["status"] == "FAILED"} == {"COUPON_NOT_USABLE"}
    assert await coupon_status(stack, user, coupon) == "USED"


async def test_failed_and_cancelled_orders_give_the_coupon_back(stack: Stack) -> None:
    user = await stack.new_user(balance=15_000)
    coupon = await holding(stack, user, discount_value=1_000)
    product = await stack.new_product(price=10_000, stock=10)

    failed = await checkout(stack, user, product, 5, coupon)  # 49,000 > 15,000
    assert (failed["status"], failed["failure_code"]) == ("FAILED", "INSUFFICIENT_BALANCE")
    assert await coupon_status(stack, user, coupon) == "ISSUED"

    paid = await checkout(stack, user, product, 1, coupon)
    assert (paid["status"], paid["total"]) == ("PAID", 9_000)
    cancelled = await stack.client.post(
        f"/api/orders/{paid['id']}/cancel", params={"wait": "true"}, headers=user.headers
    )
    assert cancelled.json()["status"] == "CANCELLED", cancelled.text

    async def status() -> str:
        return await coupon_status(stack, user, coupon)

    await poll(status, until=lambda s: s == "ISSUED", message="coupon back after cancel")


async def test_expired_and_revoked_coupons_are_refused_at_checkout(stack: Stack) -> None:
    user = await stack.new_user(balance=100_000)
    expired = await holding(stack, user)
    revoked = await holding(stack, user)
    product = await stack.new_product(price=10_000, stock=10)
    conn = await asyncpg.connect(asyncpg_dsn(stack.db_url("coupon")))
    try:  # 30 days later, as far as this coupon is concerned
        await conn.execute(
            "UPDATE user_coupons SET issued_at = issued_at - interval '31 days',"
            " expires_at = expires_at - interval '31 days' WHERE id = $1",
            expired,
        )
    finally:
        await conn.close()
    answer = await stack.client.post(f"/api/user-coupons/{revoked}/revoke", headers=stack.admin)
    assert answer.json()["status"] == "REVOKED"

    for coupon, status in ((expired, "EXPIRED"), (revoked, "REVOKED")):
        order = await checkout(stack, user, product, 1, coupon)
        assert (order["status"], order["failure_code"]) == ("FAILED", "COUPON_NOT_USABLE")
        assert await coupon_status(stack, user, coupon) == status
    assert await stack.balance(user) == 100_000
    assert await stack.stock(product) == 10
