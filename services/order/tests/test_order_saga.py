"""The saga against real PostgreSQL and Kafka; this test plays catalog, coupon and wallet."""

import uuid

import httpx

from contracts.catalog import ReservedLine, StockReservationFailed, StockReserved
from contracts.wallet import WalletDebitFailed
from order.settings import Settings
from shopdev.testing import KafkaProbe, poll

from .conftest import headers_for


async def place(order: httpx.AsyncClient, settings: Settings, user: str, **extra: object) -> dict:
    body = {"user_id": user, "items": [{"product_id": "p1", "quantity": 2}]} | extra
    response = await order.post("/api/orders", json=body, headers=headers_for(settings, user))
    assert response.status_code == 202, response.text
    return response.json()


async def status_of(order: httpx.AsyncClient, settings: Settings, order_id: str) -> dict:
    response = await order.get(
        f"/api/orders/{order_id}", headers=headers_for(settings, "admin", "admin")
    )
    return response.json()


def reserved(order_id: str, qty: int = 2) -> StockReserved:
    line = ReservedLine(
        product_id="p1", quantity=qty, unit_price=10_000, name="Pen", category="books"
    )
    return StockReserved(order_id=order_id, operation_id=f"{order_id}:place:stock", lines=(line,))


async def test_stock_failure_fails_order_and_duplicate_reply_is_applied_once(
    order: httpx.AsyncClient, settings: Settings, kafka: KafkaProbe
) -> None:
    user = str(uuid.uuid4())
    placed = await place(order, settings, user)
    oid = placed["id"]
    [cmd] = await kafka.wait_for(
        "catalog.commands", lambda e: e["key"] == oid and e["type"] == "ReserveStock"
    )
    assert cmd["payload"]["lines"] == [{"product_id": "p1", "quantity": 2}]

    failed = StockReservationFailed(
        order_id=oid, operation_id=f"{oid}:place:stock", reason="OUT_OF_STOCK", product_ids=("p1",)
    )
    envelope = await kafka.publish(failed)
    await kafka.publish(failed, envelope=envelope)  # the same message delivered twice
    await kafka.publish(failed)  # and the catalog repeating its answer

    done = await poll(
        lambda: status_of(order, settings, oid), until=lambda o: o["status"] == "FAILED"
    )
    assert done["failure_code"] == "OUT_OF_STOCK"
    history = (
        await order.get(f"/api/orders/{oid}/history", headers=headers_for(settings, user))
    ).json()
    assert [h["event"] for h in history] == ["OrderPlaced", "StockReservationFailed", "OrderFailed"]
    events = await kafka.wait_for("order.events", lambda e: e["key"] == oid)
    assert [e["type"] for e in events] == ["OrderFailed"]


async def test_debit_refused_releases_stock_in_order(
    order: httpx.AsyncClient, settings: Settings, kafka: KafkaProbe
) -> None:
    user = str(uuid.uuid4())
    oid = (await place(order, settings, user))["id"]
    await kafka.publish(reserved(oid))
    [debit] = await kafka.wait_for("wallet.commands", lambda e: e["key"] == oid)
    assert debit["type"] == "DebitWallet" and debit["payload"]["amount"] == 20_000
    await kafka.publish(
        WalletDebitFailed(
            order_id=oid,
            operation_id=f"{oid}:place:debit",
            user_id=user,
            reason="INSUFFICIENT_BALANCE",
        )
    )
    [release] = await kafka.wait_for(
        "catalog.commands", lambda e: e["key"] == oid and e["type"] == "ReleaseStock"
    )
    assert release["payload"]["operation_id"] == f"{oid}:place:stock"
    assert (await status_of(order, settings, oid))[
        "status"
    ] == "PENDING"  # until the release is confirmed


async def test_missing_reply_is_resent_with_same_operation_then_compensated(
    order: httpx.AsyncClient, settings: Settings, kafka: KafkaProbe
) -> None:
    user = str(uuid.uuid4())
    oid = (await place(order, settings, user))["id"]
    sent = await kafka.wait_for(
        "catalog.commands", lambda e: e["key"] == oid and e["type"] == "ReserveStock", count=2
    )
    assert len({e["message_id"] for e in sent}) == len(sent)
    assert {e["payload"]["operation_id"] for e in sent} == {f"{oid}:place:stock"}
    await kafka.wait_for(
        "catalog.commands", lambda e: e["key"] == oid and e["type"] == "ReleaseStock"
    )


async def test_bad_shapes_and_other_users(order: httpx.AsyncClient, settings: Settings) -> None:
    user = str(uuid.uuid4())
    h = headers_for(settings, user)
    for items in (
        [],
        [{"product_id": "p", "quantity": 0}],
        [{"product_id": "p", "quantity": 1}] * 2,
    ):
        r = await order.post("/api/orders", json={"user_id": user, "items": items}, headers=h)
        assert r.status_code == 422, r.text
    r = await order.post(
        "/api/orders",
        json={"user_id": user, "items": [{"product_id": "p", "quantity": 1}], "price": 1},
        headers=h,
    )
    assert r.status_code == 422
    r = await order.post(
        "/api/orders",
        json={"user_id": "someone", "items": [{"product_id": "p", "quantity": 1}]},
        headers=h,
    )
    assert r.status_code == 403
    assert (await order.get(f"/api/orders/{uuid.uuid4()}", headers=h)).json()[
        "code"
    ] == "ORDER_NOT_FOUND"
