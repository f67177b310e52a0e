"""Orders end to end: every service a real process, real Kafka and PostgreSQL, via the gateway."""

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest

from shopdev.testing import poll
from shopkit.db import asyncpg_dsn

from .conftest import Stack, User, log_tail

pytestmark = pytest.mark.e2e


async def order(stack: Stack, user: User, items: list[tuple[str, int]], **extra: Any) -> Any:
    body = {"user_id": user.id, "items": [{"product_id": p, "quantity": q} for p, q in items]}
    return await stack.client.post(
        "/api/orders", params={"wait": "true"}, json=body | extra, headers=user.headers
    )


async def settled(stack: Stack, user: User, items: list[tuple[str, int]]) -> dict[str, Any]:
    response = await order(stack, user, items)
    assert response.status_code == 200, response.text + log_tail(stack, "order")
    return dict(response.json())


async def payments(stack: Stack, order_id: str) -> list[dict[str, Any]]:
    r = await stack.client.get("/api/payments", params={"order_id": order_id}, headers=stack.admin)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def test_happy_path_then_cancel_refunds_once(stack: Stack) -> None:
    user = await stack.new_user(balance=50_000)
    product = await stack.new_product(price=10_000, stock=5)

    paid = await settled(stack, user, [(product, 2)])

    assert (paid["status"], paid["total"], paid["items"][0]["unit_price"]) == (
        "PAID",
        20_000,
        10_000,
    )
    assert await stack.balance(user) == 30_000
    assert await stack.stock(product) == 3
    assert [p["status"] for p in await payments(stack, paid["id"])] == ["APPROVED"]

    url = f"/api/orders/{paid['id']}/cancel"
    answers = await asyncio.gather(
        *[stack.client.post(url, params={"wait": "true"}, headers=user.headers) for _ in range(10)]
    )
    assert {a.status_code for a in answers} <= {200, 409}, [a.text for a in answers]
    assert any(a.status_code == 200 and a.json()["status"] == "CANCELLED" for a in answers)
    again = await stack.client.post(url, headers=user.headers)
    assert (again.status_code, again.json()["code"]) == (409, "ORDER_NOT_CANCELLABLE")
    assert await stack.balance(user) == 50_000
    assert await stack.stock(product) == 5
    assert [p["status"] for p in await payments(stack, paid["id"])] == ["CANCELLED"]
    history = await stack.client.get(f"/api/orders/{paid['id']}/history", headers=user.headers)
    events = [h["event"] for h in history.json()]
    assert events[0] == "OrderPlaced" and "OrderPaid" in events and events[-1] == "OrderCancelled"
    assert events.count("WalletRefunded") == 1

    stranger = await stack.new_user()
    forbidden = await stack.client.post(url, headers=stranger.headers)
    assert forbidden.status_code == 403


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("balance", "INSUFFICIENT_BALANCE"),
        ("stock", "OUT_OF_STOCK"),
        ("unknown", "PRODUCT_NOT_FOUND"),
        ("decline", "PAYMENT_DECLINED"),
        ("timeout", "PAYMENT_TIMEOUT"),
        ("short-line", "OUT_OF_STOCK"),
    ],
)
async def test_failures_leave_no_trace(stack: Stack, case: str, code: str) -> None:
    user = await stack.new_user(balance=5_000 if case == "balance" else 50_000)
    product = await stack.new_product(price=10_000, stock=1 if case == "stock" else 5)
    other = await stack.new_product(price=1_000, stock=1)
    items = [(product, 2)] if case != "short-line" else [(other, 1), (product, 9)]
    if case == "unknown":
        items = [(str(uuid.uuid4()), 1)]
    if case == "short-line":
        items = [(product, 1), (other, 2)]
    before = (await stack.balance(user), await stack.stock(product), await stack.stock(other))
    await stack.set_payment_behavior(
        decline_rate=1.0 if case == "decline" else 0.0,
        timeout_rate=1.0 if case == "timeout" else 0.0,
    )
    try:
        response = await order(stack, user, items)
    finally:
        await stack.set_payment_behavior()
    assert response.status_code == 200, response.text + log_tail(stack, "order")
    assert (response.json()["status"], response.json()["failure_code"]) == ("FAILED", code)
    after = (await stack.balance(user), await stack.stock(product), await stack.stock(other))
    assert after == before
    if case == "timeout":
        assert {p["status"] for p in await payments(stack, response.json()["id"])} <= {"CANCELLED"}


async def final(stack: Stack, user: User, answer: Any) -> dict[str, Any]:
    """The order's final state: `?wait=true` gives up after 10 s on a loaded machine."""
    assert answer.status_code in (200, 202), answer.text
    url = f"/api/orders/{answer.json()['id']}"

    async def current() -> dict[str, Any]:
        return dict((await stack.client.get(url, headers=user.headers)).json())

    return await poll(
        current,
        until=lambda found: found["status"] != "PENDING",
        timeout=120,
        message="order left PENDING",
    )


async def test_last_units_go_to_exactly_ten_buyers(stack: Stack) -> None:
    product = await stack.new_product(price=1_000, stock=10)
    users = await asyncio.gather(*[stack.new_user(balance=5_000) for _ in range(100)])

    sent = await asyncio.gather(*[order(stack, u, [(product, 1)]) for u in users])
    answers = await asyncio.gather(*[final(stack, u, a) for u, a in zip(users, sent, strict=True)])

    statuses = [a["status"] for a in answers]
    assert statuses.count("PAID") == 10, statuses
    assert statuses.count("FAILED") == 90
    assert await stack.stock(product) == 0
    balances = await asyncio.gather(*[stack.balance(u) for u in users])
    winners = {u.id for u, a in zip(users, answers, strict=True) if a["status"] == "PAID"}
    for u, balance in zip(users, balances, strict=True):
        assert balance == (4_000 if u.id in winners else 5_000)


async def test_money_for_one_order_pays_exactly_one(stack: Stack) -> None:
    user = await stack.new_user(balance=10_000)
    products = [await stack.new_product(price=10_000, stock=5) for _ in range(10)]

    sent = await asyncio.gather(*[order(stack, user, [(p, 1)]) for p in products])
    answers = await asyncio.gather(*[final(stack, user, a) for a in sent])

    statuses = [a["status"] for a in answers]
    assert statuses.count("PAID") == 1, statuses
    assert await stack.balance(user) == 0


async def test_one_idempotency_key_makes_one_order(stack: Stack) -> None:
    user = await stack.new_user(balance=50_000)
    product = await stack.new_product(price=10_000, stock=5)
    body = {"user_id": user.id, "items": [{"product_id": product, "quantity": 1}]}
    headers = user.headers | {"Idempotency-Key": str(uuid.uuid4())}

    answers = await asyncio.gather(
        *[stack.client.post("/api/orders", json=body, headers=headers) for _ in range(10)]
    )

    ids = {a.json()["id"] for a in answers if a.status_code in (200, 202)}
    assert len(ids) == 1, [a.text for a in answers]
    [order_id] = ids
    listed = await stack.client.get(f"/api/users/{user.id}/orders", headers=user.headers)
    assert [o["id"] for o in listed.json()["items"]] == [order_id]

    await poll(
        lambda: stack.balance(user),
        until=lambda balance: balance == 40_000,
        message="the one order paid",
    )
    assert await stack.balance(user) == 40_000


async def test_modify_up_down_and_impossible(stack: Stack) -> None:
    user = await stack.new_user(balance=45_000)
    product = await stack.new_product(price=10_000, stock=5)
    paid = await settled(stack, user, [(product, 2)])
    url = f"/api/orders/{paid['id']}"

    async def modify(quantity: int) -> Any:
        body = {"items": [{"product_id": product, "quantity": quantity}]}
        return await stack.client.patch(
            url, params={"wait": "true"}, json=body, headers=user.headers
        )

    up = await modify(4)
    assert (up.status_code, up.json()["total"]) == (200, 40_000), up.text
    assert (await stack.balance(user), await stack.stock(product)) == (5_000, 1)
    down = await modify(1)
    assert (down.status_code, down.json()["total"]) == (200, 10_000), down.text
    assert (await stack.balance(user), await stack.stock(product)) == (35_000, 4)
    too_many = await modify(6)
    assert (too_many.status_code, too_many.json()["code"]) == (409, "OUT_OF_STOCK")
    too_dear = await modify(5)
    assert (too_dear.status_code, too_dear.json()["code"]) == (409, "INSUFFICIENT_BALANCE")
    assert (await stack.balance(user), await stack.stock(product)) == (35_000, 4)
    now = (await stack.client.get(url, headers=user.headers)).json()
    assert (now["status"], now["total"], now["items"][0]["quantity"]) == ("PAID", 10_000, 1)
    cancelled = await stack.client.post(
        f"{url}/cancel", params={"wait": "true"}, headers=user.headers
    )
    assert cancelled.json()["status"] == "CANCELLED"
    assert (await stack.balance(user), await stack.stock(product)) == (45_000, 5)


@pytest.mark.parametrize("victim", ["order", "wallet"])
async def test_kill_mid_saga_every_order_settles(stack: Stack, victim: str) -> None:
    product = await stack.new_product(price=1_000, stock=15)
    users = await asyncio.gather(*[stack.new_user(balance=3_000) for _ in range(20)])
    bodies = [{"user_id": u.id, "items": [{"product_id": product, "quantity": 1}]} for u in users]
    placing = [
        asyncio.create_task(stack.client.post("/api/orders", json=b, headers=u.headers))
        for u, b in zip(users, bodies, strict=True)
    ]

    async def accepted() -> int:
        return sum(
            1 for t in placing if t.done() and not t.exception() and t.result().status_code == 202
        )

    # Kill once the first orders are accepted: their sagas, and the other POSTs, are in flight.
    await poll(accepted, until=lambda n: n >= 1, message="a first order accepted")
    process = stack.process(victim)
    await asyncio.to_thread(process.stop, kill=True)
    await asyncio.wait(placing)
    placed = [t.result() for t in placing if not t.exception()]
    process.start()
    await asyncio.to_thread(process.wait_ready)

    assert any(p.status_code == 202 for p in placed)
    # Count by buyer, not by the ids we were told: an order whose response died with the
    # process may still exist and must settle too.
    buyers = [u.id for u in users]
    conn = await asyncpg.connect(asyncpg_dsn(stack.db_url("order")))
    try:

        async def unsettled() -> int:
            return int(
                await conn.fetchval(
                    "SELECT count(*) FROM orders WHERE user_id = ANY($1::text[])"
                    " AND (status = 'PENDING' OR step <> 'DONE')",
                    buyers,
                )
            )

        await poll(
            unsettled,
            until=lambda n: n == 0,
            timeout=90,
            message=f"every order settled after {victim} was killed",
        )
        paid = await conn.fetchval(
            "SELECT count(*) FROM orders WHERE user_id = ANY($1::text[]) AND status = 'PAID'",
            buyers,
        )
    finally:
        await conn.close()
    balances = await asyncio.gather(*[stack.balance(u) for u in users])
    assert sum(3_000 - b for b in balances) == paid * 1_000
    assert await stack.stock(product) == 15 - paid
