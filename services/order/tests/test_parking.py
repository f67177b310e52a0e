"""Sagas never give up silently, against real PostgreSQL and Kafka: a compensation without
replies parks its order for an operator (admin API), a retry or a late reply unparks it; a
provider cancel that keeps failing parks too; one saga row that cannot be loaded or advanced
is parked and holds no other order back."""

import uuid
from datetime import timedelta

import asyncpg
import httpx

from contracts.catalog import StockReleased
from contracts.wallet import WalletDebited, WalletDebitFailed, WalletRefunded
from order import service
from order.payments import ProviderOutcomes, do_provider_step
from order.provider import PaymentProvider
from order.saga import PaymentApproved, PaymentsCancelled, PaymentTimedOut
from order.settings import Settings
from order.store.leases import claim_provider_work
from shopdev.testing import KafkaProbe, poll
from shopkit.clock import system_clock
from shopkit.db import Database

from .conftest import headers_for
from .test_order_saga import place, reserved, status_of
from .test_payment_worker import put_in_paying


async def parked_list(order: httpx.AsyncClient, settings: Settings) -> dict[str, dict]:
    found: dict[str, dict] = {}
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 100} | ({"cursor": cursor} if cursor else {})
        r = await order.get(
            "/ops/parked-orders", params=params, headers=headers_for(settings, "ops", "admin")
        )
        assert r.status_code == 200, r.text
        page = r.json()
        found |= {item["id"]: item for item in page["items"]}
        cursor = page["next_cursor"]
        if not cursor:
            return found


async def releasing_stock(order: httpx.AsyncClient, settings: Settings, kafka: KafkaProbe) -> str:
    """A placed order whose debit was refused: compensating, waiting for ReleaseStock's reply."""
    user = str(uuid.uuid4())
    oid = (await place(order, settings, user))["id"]
    await kafka.publish(reserved(oid))
    await kafka.wait_for("wallet.commands", lambda e: e["key"] == oid)
    refused = WalletDebitFailed(
        order_id=oid, operation_id=f"{oid}:place:debit", user_id=user, reason="INSUFFICIENT_BALANCE"
    )
    await kafka.publish(refused)
    return oid


def released(oid: str) -> StockReleased:
    return StockReleased(order_id=oid, operation_id=f"{oid}:place:stock")


async def test_a_compensation_without_replies_parks_and_a_retry_or_late_reply_unparks_it(
    order: httpx.AsyncClient, settings: Settings, kafka: KafkaProbe
) -> None:
    retried, late = [await releasing_stock(order, settings, kafka) for _ in range(2)]
    parked = await poll(
        lambda: parked_list(order, settings),
        until=lambda found: {retried, late} <= found.keys(),
        timeout=40,
    )
    entry = parked[retried]
    assert (entry["status"], entry["step"]) == ("PENDING", "RELEASING_STOCK")
    assert "RELEASING_STOCK" in entry["last_error"] and entry["parked_at"]
    events = [h["event"] for h in entry["history"]]
    assert events[:3] == ["OrderPlaced", "StockReserved", "WalletDebitFailed"]
    assert events.count("CommandResent") == 1 and events[-1] == "SagaParked"
    # The client still sees a PENDING order.
    assert (await status_of(order, settings, retried))["status"] == "PENDING"

    user_headers = headers_for(settings, str(uuid.uuid4()))
    assert (await order.get("/ops/parked-orders", headers=user_headers)).status_code == 403
    admin = headers_for(settings, "ops", "admin")
    r = await order.post(f"/ops/parked-orders/{retried}/retry", headers=admin)
    assert r.status_code == 202, r.text
    r = await order.post(f"/ops/parked-orders/{retried}/retry", headers=admin)
    assert (r.status_code, r.json()["code"]) == (409, "ORDER_NOT_PARKED")
    r = await order.post(f"/ops/parked-orders/{uuid.uuid4()}/retry", headers=admin)
    assert (r.status_code, r.json()["code"]) == (404, "ORDER_NOT_FOUND")
    assert retried not in await parked_list(order, settings)

    # Resumed: the release is asked for again (first try, one resend, then after the retry).
    await kafka.wait_for(
        "catalog.commands",
        lambda e: e["key"] == retried and e["type"] == "ReleaseStock",
        count=3,
    )
    await kafka.publish_many([released(retried), released(late)])
    for oid in (retried, late):
        done = await poll(
            lambda oid=oid: status_of(order, settings, oid), until=lambda o: o["status"] == "FAILED"
        )
        assert done["failure_code"] == "INSUFFICIENT_BALANCE"
    remaining = await parked_list(order, settings)
    assert retried not in remaining and late not in remaining
    history = (await order.get(f"/api/orders/{retried}/history", headers=admin)).json()
    events = [h["event"] for h in history]
    assert events.index("RetryRequested") > events.index("SagaParked")
    assert events[-2:] == ["StockReleased", "OrderFailed"]


async def parked_row(db: Database, order_id: str) -> asyncpg.Record:
    async with db.autocommit() as conn:
        row = await conn.fetchrow(
            "SELECT step, status, deadline, parked_at, last_error FROM orders WHERE id = $1",
            order_id,
        )
    assert row is not None
    return row


async def history_events(db: Database, order_id: str) -> list[str]:
    async with db.autocommit() as conn:
        rows = await conn.fetch(
            "SELECT event FROM order_history WHERE order_id = $1 ORDER BY seq", order_id
        )
    return [r["event"] for r in rows]


async def test_a_provider_cancel_that_keeps_failing_parks_the_order(
    settings: Settings, own_db: Database
) -> None:
    """The provider refuses every connection: the void after a timed-out payment is tried
    `max_compensation_attempts` times, then the order is parked (still PENDING)."""
    now = system_clock()
    oid = await put_in_paying(own_db, settings)
    async with own_db.transaction() as conn:
        await service.apply_events(
            conn, settings=settings, events=[(oid, PaymentTimedOut("slow"), None)], now=now
        )
    provider = PaymentProvider(settings)  # 127.0.0.1:9: nothing listens
    outcomes = ProviderOutcomes(own_db, settings, system_clock)
    try:
        for attempt in range(1, settings.max_compensation_attempts + 1):
            later = now + timedelta(minutes=attempt)
            [work] = await claim_provider_work(own_db, lease_seconds=30, now=later, limit=10)
            assert (work.order_id, work.step, work.attempt) == (oid, "VOIDING_PAYMENT", attempt)
            await do_provider_step(
                own_db,
                provider,
                outcomes,
                work,
                settings=settings,
                clock=lambda later=later: later,
            )
    finally:
        await provider.close()
    row = await parked_row(own_db, oid)
    assert (row["status"], row["step"], row["deadline"]) == ("PENDING", "VOIDING_PAYMENT", None)
    assert row["parked_at"] is not None and "cancel failed 2 time(s)" in row["last_error"]
    assert (await history_events(own_db, oid))[-1] == "SagaParked"
    far = now + timedelta(days=1)
    assert await claim_provider_work(own_db, lease_seconds=30, now=far, limit=10) == []


async def test_one_corrupt_saga_row_does_not_stop_the_others_deadlines(
    settings: Settings, own_db: Database
) -> None:
    now = system_clock()
    orders = []
    for _ in range(4):
        async with own_db.transaction() as conn:
            placed = await service.place_order(
                conn, settings=settings, user_id="u1", items=[("p1", 1)], coupon_id=None, now=now
            )
        orders.append(placed.id)
    good, corrupt, unknown_step, stuck = orders
    async with own_db.autocommit() as conn:
        await conn.execute("UPDATE orders SET saga = '{\"order_id\": 5}' WHERE id = $1", corrupt)
        await conn.execute(
            "UPDATE orders SET saga = jsonb_set(saga, '{step}', '\"BOGUS\"') WHERE id = $1",
            unknown_step,
        )
        # The row says it waits for stock, its saga says nothing is in flight.
        await conn.execute(
            "UPDATE orders SET saga = jsonb_set(saga, '{step}', '\"DONE\"') WHERE id = $1", stuck
        )
    later = now + timedelta(seconds=settings.step_timeout_seconds + 1)
    # The broken rows are due first: they must not stop the good one behind them.
    async with own_db.autocommit() as conn:
        await conn.execute(
            "UPDATE orders SET deadline = deadline - interval '1 second' WHERE id <> $1", good
        )
    assert await service.run_deadlines(own_db, settings=settings, now=later) == 4
    assert await service.run_deadlines(own_db, settings=settings, now=later) == 0

    assert (await history_events(own_db, good))[-1] == "CommandResent"
    async with own_db.autocommit() as conn:
        resent = await conn.fetchval(
            "SELECT count(*) FROM outbox WHERE key = $1 AND type = 'ReserveStock'", good
        )
    assert resent == 2
    for broken, error in (
        (corrupt, "ValidationError"),
        (unknown_step, "BOGUS"),
        (stuck, "SagaStuck"),
    ):
        row = await parked_row(own_db, broken)
        assert row["parked_at"] is not None and row["deadline"] is None
        assert error in row["last_error"]
        assert (await history_events(own_db, broken))[-1] == "SagaParked"


async def test_a_corrupt_row_is_parked_by_the_payment_claim_and_by_replies(
    settings: Settings, own_db: Database
) -> None:
    now = system_clock()
    good, corrupt, stuck = [await put_in_paying(own_db, settings) for _ in range(3)]
    async with own_db.autocommit() as conn:
        await conn.execute("UPDATE orders SET saga = '[]' WHERE id = $1", corrupt)
        await conn.execute(
            "UPDATE orders SET saga = jsonb_set(saga, '{step}', '\"DONE\"') WHERE id = $1", stuck
        )
    claimed = await claim_provider_work(own_db, lease_seconds=30, now=system_clock(), limit=10)
    assert [c[0] for c in claimed] == [good]
    assert "ValidationError" in (await parked_row(own_db, corrupt))["last_error"]
    assert "SagaStuck" in (await parked_row(own_db, stuck))["last_error"]

    # Replies for a broken saga and a sound one, in one transaction: the sound one moves on.
    placed = []
    for _ in range(2):
        async with own_db.transaction() as conn:
            placed.append(
                (
                    await service.place_order(
                        conn,
                        settings=settings,
                        user_id="u1",
                        items=[("p1", 2)],
                        coupon_id=None,
                        now=now,
                    )
                ).id
            )
    sound, broken = placed
    async with own_db.autocommit() as conn:
        await conn.execute("UPDATE orders SET saga = '{}' WHERE id = $1", broken)
    async with own_db.transaction() as conn:
        await service.apply_events(
            conn,
            settings=settings,
            events=[(broken, reserved(broken), None), (sound, reserved(sound), None)],
            now=now,
        )
    assert (await parked_row(own_db, sound))["step"] == "DEBITING"
    assert (await parked_row(own_db, broken))["parked_at"] is not None


async def test_a_parked_step_that_moves_on_without_changing_step_gets_its_deadline_back(
    settings: Settings, own_db: Database
) -> None:
    """A cancel refunding two debits parks; one late refund reply unparks it (the step stays
    CANCEL_REFUNDING), and its remaining refund is re-sent again on deadlines."""
    now = system_clock()
    oid = await put_in_paying(own_db, settings)
    user = (await service.read_order(own_db, order_id=oid)).user_id  # type: ignore[union-attr]
    async with own_db.transaction() as conn:
        await service.apply_events(
            conn, settings=settings, events=[(oid, PaymentApproved("pay-1"), None)], now=now
        )
    await service.request_modify(
        own_db,
        settings=settings,
        order_id=oid,
        user_id=user,
        is_admin=False,
        items=[("p1", 3)],
        now=now,
    )
    more = reserved(oid, qty=1).model_copy(update={"operation_id": f"{oid}:modify:1:stock"})
    debit = WalletDebited(
        order_id=oid,
        operation_id=f"{oid}:modify:1:debit",
        user_id=user,
        amount=10_000,
        balance=0,
        transaction_id=str(uuid.uuid4()),
    )
    for event in (more, debit):
        async with own_db.transaction() as conn:
            await service.apply_events(
                conn, settings=settings, events=[(oid, event, None)], now=now
            )
    await service.request_cancel(
        own_db, settings=settings, order_id=oid, user_id=user, is_admin=False, now=now
    )
    async with own_db.transaction() as conn:
        await service.apply_events(
            conn, settings=settings, events=[(oid, PaymentsCancelled(("pay-1",)), None)], now=now
        )
    assert (await parked_row(own_db, oid))["step"] == "CANCEL_REFUNDING"
    for minutes in (1, 2):  # one re-send, then parked
        later = now + timedelta(minutes=minutes)
        assert await service.run_deadlines(own_db, settings=settings, now=later) == 1
    row = await parked_row(own_db, oid)
    assert (row["status"], row["deadline"]) == ("PAID", None) and row["parked_at"] is not None

    refund = WalletRefunded(
        order_id=oid,
        operation_id=f"{oid}:cancel:refund:0",
        user_id=user,
        amount=20_000,
        balance=20_000,
        transaction_id=str(uuid.uuid4()),
    )
    async with own_db.transaction() as conn:
        await service.apply_events(conn, settings=settings, events=[(oid, refund, None)], now=later)
    row = await parked_row(own_db, oid)
    assert row["step"] == "CANCEL_REFUNDING" and row["parked_at"] is None
    assert row["deadline"] is not None
    far = later + timedelta(minutes=5)
    assert await service.run_deadlines(own_db, settings=settings, now=far) == 1
    assert (await history_events(own_db, oid))[-1] == "CommandResent"
