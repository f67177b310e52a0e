import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx

from shopkit.db import asyncpg_dsn

Behave = Callable[..., Awaitable[None]]


async def pay(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    *,
    order_id: str | None = None,
    amount: int = 15_000,
    key: str | None = None,
) -> httpx.Response:
    return await client.post(
        "/api/payments",
        json={"order_id": order_id or str(uuid.uuid4()), "amount": amount},
        headers={**headers, "Idempotency-Key": key or str(uuid.uuid4())},
    )


async def payments_of(
    client: httpx.AsyncClient, headers: dict[str, str], order_id: str
) -> list[dict[str, Any]]:
    found = await client.get("/api/payments", params={"order_id": order_id}, headers=headers)
    assert found.status_code == 200, found.text
    return found.json()["items"]


async def test_a_new_payment_is_approved_and_can_be_read_back(
    payments: httpx.AsyncClient, merchant: dict[str, str]
) -> None:
    order_id = str(uuid.uuid4())
    created = await pay(payments, merchant, order_id=order_id, amount=12_345)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["status"] == "APPROVED"
    assert (body["order_id"], body["amount"]) == (order_id, 12_345)
    read = await payments.get(f"/api/payments/{body['payment_id']}", headers=merchant)
    assert read.status_code == 200
    assert read.json() == body


async def test_decline_rate_one_declines_every_payment(
    payments: httpx.AsyncClient, merchant: dict[str, str], behave: Behave
) -> None:
    await behave(decline_rate=1)
    answers = [await pay(payments, merchant) for _ in range(3)]
    assert [(a.status_code, a.json()["status"]) for a in answers] == [(201, "DECLINED")] * 3


async def test_the_same_key_and_body_replays_the_same_payment(
    payments: httpx.AsyncClient, merchant: dict[str, str], behave: Behave
) -> None:
    order_id, key = str(uuid.uuid4()), str(uuid.uuid4())
    first = await pay(payments, merchant, order_id=order_id, key=key)
    # A replay returns what was recorded, even when the provider has turned hostile since.
    await behave(decline_rate=1)
    again = await pay(payments, merchant, order_id=order_id, key=key)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert again.json()["status"] == "APPROVED"
    assert len(await payments_of(payments, merchant, order_id)) == 1


async def test_concurrent_posts_with_one_key_record_one_payment(
    payments: httpx.AsyncClient, merchant: dict[str, str], payment_db: str
) -> None:
    order_id, key = str(uuid.uuid4()), str(uuid.uuid4())
    answers = await asyncio.gather(
        *(pay(payments, merchant, order_id=order_id, key=key) for _ in range(20))
    )
    assert sorted(a.status_code for a in answers) == [200] * 19 + [201]
    assert len({a.json()["payment_id"] for a in answers}) == 1
    conn = await asyncpg.connect(asyncpg_dsn(payment_db))
    try:
        rows = await conn.fetchval("SELECT count(*) FROM payments WHERE idempotency_key = $1", key)
    finally:
        await conn.close()
    assert rows == 1


async def test_a_key_reused_with_another_body_is_refused(
    payments: httpx.AsyncClient, merchant: dict[str, str]
) -> None:
    order_id, key = str(uuid.uuid4()), str(uuid.uuid4())
    assert (
        await pay(payments, merchant, order_id=order_id, key=key, amount=100)
    ).status_code == 201
    reused = await pay(payments, merchant, order_id=order_id, key=key, amount=200)
    assert reused.status_code == 422
    assert reused.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert [p["amount"] for p in await payments_of(payments, merchant, order_id)] == [100]


async def test_concurrent_payments_recorded_together_each_get_their_own_answer(
    payments: httpx.AsyncClient, merchant: dict[str, str]
) -> None:
    """Payments posted at once are recorded together; a key reused with another amount among
    them is refused alone."""
    orders = [str(uuid.uuid4()) for _ in range(10)]
    order_id, key = str(uuid.uuid4()), str(uuid.uuid4())
    answers = await asyncio.gather(
        *(pay(payments, merchant, order_id=o, amount=1_000 + i) for i, o in enumerate(orders)),
        pay(payments, merchant, order_id=order_id, key=key, amount=100),
        pay(payments, merchant, order_id=order_id, key=key, amount=200),
    )
    assert [a.status_code for a in answers[:10]] == [201] * 10
    assert [a.json()["amount"] for a in answers[:10]] == [1_000 + i for i in range(10)]
    assert len({a.json()["payment_id"] for a in answers[:10]}) == 10
    pair = sorted(a.status_code for a in answers[10:])
    assert pair == [201, 422], [a.text for a in answers[10:]]
    recorded = await payments_of(payments, merchant, order_id)
    winner = next(a for a in answers[10:] if a.status_code == 201)
    assert [p["amount"] for p in recorded] == [winner.json()["amount"]]


async def test_bad_requests_get_stable_codes(
    payments: httpx.AsyncClient, merchant: dict[str, str]
) -> None:
    order_id = str(uuid.uuid4())
    no_key = await payments.post(
        "/api/payments", json={"order_id": order_id, "amount": 100}, headers=merchant
    )
    assert (no_key.status_code, no_key.json()["code"]) == (422, "IDEMPOTENCY_KEY_REQUIRED")
    for amount in (0, -5, 1.5, "100"):
        bad = await payments.post(
            "/api/payments",
            json={"order_id": order_id, "amount": amount},
            headers={**merchant, "Idempotency-Key": str(uuid.uuid4())},
        )
        assert (bad.status_code, bad.json()["code"]) == (422, "INVALID_AMOUNT"), amount
    extra = await payments.post(
        "/api/payments",
        json={"order_id": order_id, "amount": 100, "currency": "USD"},
        headers={**merchant, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert extra.status_code == 422
    anonymous = await pay(payments, {}, order_id=order_id)
    assert anonymous.status_code == 401
    assert await payments_of(payments, merchant, order_id) == []
    missing = await payments.get(f"/api/payments/{uuid.uuid4()}", headers=merchant)
    assert (missing.status_code, missing.json()["code"]) == (404, "PAYMENT_NOT_FOUND")


async def test_cancel_is_idempotent_and_refused_for_a_declined_payment(
    payments: httpx.AsyncClient, merchant: dict[str, str], behave: Behave
) -> None:
    approved = (await pay(payments, merchant)).json()
    first = await payments.post(f"/api/payments/{approved['payment_id']}/cancel", headers=merchant)
    again = await payments.post(f"/api/payments/{approved['payment_id']}/cancel", headers=merchant)
    assert (first.status_code, again.status_code) == (200, 200)
    assert first.json()["status"] == "CANCELLED"
    assert again.json() == first.json()
    read = await payments.get(f"/api/payments/{approved['payment_id']}", headers=merchant)
    assert read.json()["status"] == "CANCELLED"

    await behave(decline_rate=1)
    declined = (await pay(payments, merchant)).json()
    refused = await payments.post(
        f"/api/payments/{declined['payment_id']}/cancel", headers=merchant
    )
    assert (refused.status_code, refused.json()["code"]) == (409, "PAYMENT_NOT_CANCELLABLE")
    unknown = await payments.post(f"/api/payments/{uuid.uuid4()}/cancel", headers=merchant)
    assert (unknown.status_code, unknown.json()["code"]) == (404, "PAYMENT_NOT_FOUND")


async def test_list_by_order_id_is_paginated_newest_first(
    payments: httpx.AsyncClient, merchant: dict[str, str]
) -> None:
    order_id = str(uuid.uuid4())
    made = [(await pay(payments, merchant, order_id=order_id, amount=a)).json() for a in (1, 2, 3)]
    await pay(payments, merchant)  # another order's payment stays out of the list
    page = await payments.get(
        "/api/payments", params={"order_id": order_id, "limit": 2}, headers=merchant
    )
    assert [p["amount"] for p in page.json()["items"]] == [3, 2]
    rest = await payments.get(
        "/api/payments",
        params={"order_id": order_id, "limit": 2, "cursor": page.json()["next_cursor"]},
        headers=merchant,
    )
    assert rest.json() == {"items": [made[0]], "next_cursor": None}
    bad = await payments.get("/api/payments", params={"cursor": "nonsense!"}, headers=merchant)
    assert (bad.status_code, bad.json()["code"]) == (422, "INVALID_CURSOR")


async def test_behavior_is_admin_only_and_validated(
    payments: httpx.AsyncClient, user: dict[str, str], admin: dict[str, str], behave: Behave
) -> None:
    knobs = {"decline_rate": 0.25, "timeout_rate": 0.5, "latency_ms": 10}
    forbidden = await payments.put("/api/payments/behavior", json=knobs, headers=user)
    assert forbidden.status_code == 403
    assert (await payments.get("/api/payments/behavior", headers=user)).status_code == 403
    for bad in (
        {"decline_rate": 1.5},
        {"timeout_rate": -0.1},
        {"latency_ms": 60_001},
        {"latency_ms": 1.5},
        {"decline_rate": "0.5"},
        {"surprise": 1},
    ):
        refused = await payments.put("/api/payments/behavior", json=bad, headers=admin)
        assert refused.status_code == 422, bad
    await behave(**knobs)
    read = (await payments.get("/api/payments/behavior", headers=admin)).json()
    assert {k: read[k] for k in knobs} == knobs
    # PUT replaces the whole behavior: what is left out goes back to 0.
    await behave(decline_rate=1)
    read = (await payments.get("/api/payments/behavior", headers=admin)).json()
    assert (read["decline_rate"], read["timeout_rate"], read["latency_ms"]) == (1, 0, 0)


async def test_a_timed_out_payment_is_recorded_and_answered_late(
    payments: httpx.AsyncClient, merchant: dict[str, str], behave: Behave
) -> None:
    await behave(timeout_rate=1)
    order_id = str(uuid.uuid4())
    # This app hangs 1 s (settings.timeout_hang_seconds); a patient client gets the approval.
    late = await pay(payments, merchant, order_id=order_id)
    assert (late.status_code, late.json()["status"]) == (201, "APPROVED")
    assert [p["payment_id"] for p in await payments_of(payments, merchant, order_id)] == [
        late.json()["payment_id"]
    ]


async def test_latency_delays_only_the_charge(
    payments: httpx.AsyncClient, merchant: dict[str, str], behave: Behave
) -> None:
    await behave(latency_ms=300)
    started = time.monotonic()
    charged = await pay(payments, merchant)
    charge_took = time.monotonic() - started
    started = time.monotonic()
    read = await payments.get(f"/api/payments/{charged.json()['payment_id']}", headers=merchant)
    read_took = time.monotonic() - started
    assert (charged.status_code, read.status_code) == (201, 200)
    assert charge_took >= 0.3
    assert read_took < 0.3


async def test_only_the_merchant_key_charges_and_cancels(
    payments: httpx.AsyncClient,
    merchant: dict[str, str],
    user: dict[str, str],
    admin: dict[str, str],
) -> None:
    """Shoppers never reach the merchant API; the shop's admin may only look payments up."""
    order_id = str(uuid.uuid4())
    paid = (await pay(payments, merchant, order_id=order_id)).json()
    routes = [
        ("POST", "/api/payments"),
        ("POST", f"/api/payments/{paid['payment_id']}/cancel"),
        ("GET", f"/api/payments/{paid['payment_id']}"),
        ("GET", f"/api/payments?order_id={order_id}"),
    ]
    body = {"order_id": order_id, "amount": 1}
    wrong_key = {"X-Merchant-Key": merchant["X-Merchant-Key"][::-1]}
    for method, path in routes:
        for headers, expected in ((user, 403), ({}, 401), (wrong_key, 401)):
            answer = await payments.request(
                method, path, json=body, headers={**headers, "Idempotency-Key": str(uuid.uuid4())}
            )
            assert answer.status_code == expected, (method, path, headers, answer.text)
        by_admin = await payments.request(
            method, path, json=body, headers={**admin, "Idempotency-Key": str(uuid.uuid4())}
        )
        assert by_admin.status_code == (200 if method == "GET" else 403), (method, path)
    assert [
        (p["payment_id"], p["status"]) for p in await payments_of(payments, admin, order_id)
    ] == [(paid["payment_id"], "APPROVED")]
    knobs = await payments.get("/api/payments/behavior", headers=merchant)
    assert knobs.status_code == 401  # the behavior knobs are the shop admin's, not the merchant's
