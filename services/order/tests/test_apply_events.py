"""Set-based saga steps against real PostgreSQL: many events, one read and one write."""

import asyncio
import uuid

import asyncpg

from contracts.catalog import StockReleased, StockReservationFailed
from contracts.wallet import WalletDebited, WalletDebitFailed
from order import service
from order.settings import Settings
from order.store.sagas import CHANGED_CHANNEL
from order.views import order_out
from order.waiting import Waiters
from shopdev.testing import poll
from shopkit.clock import system_clock
from shopkit.db import Database, asyncpg_dsn

from .test_order_saga import reserved


async def placed(db: Database, settings: Settings) -> str:
    async with db.transaction() as conn:
        out = await service.place_order(
            conn,
            settings=settings,
            user_id=str(uuid.uuid4()),
            items=[("p1", 2)],
            coupon_id=None,
            now=system_clock(),
        )
    return str(out.id)


def debited(oid: str) -> WalletDebited:
    return WalletDebited(
        order_id=oid,
        operation_id=f"{oid}:place:debit",
        user_id="u",
        amount=20_000,
        balance=0,
        transaction_id=str(uuid.uuid4()),
    )


async def test_a_batch_of_events_for_several_orders_is_applied_in_order(
    own_db: Database, settings: Settings
) -> None:
    a, b, c = [await placed(own_db, settings) for _ in range(3)]
    failed_c = StockReservationFailed(
        order_id=c, operation_id=f"{c}:place:stock", reason="OUT_OF_STOCK", product_ids=("p1",)
    )
    events = [
        (a, reserved(a), "corr-a"),
        (a, debited(a), "corr-a"),  # the same order's second step, in the same batch
        (b, reserved(b), "corr-b"),
        (b, reserved(b), "corr-b"),  # a repeated reply: changes nothing
        (c, debited(c), None),  # not what c waits for: changes nothing
        (c, failed_c, None),
        (str(uuid.uuid4()), reserved("x"), None),  # an order this database never had
    ]
    async with own_db.transaction() as conn:
        await service.apply_events(conn, settings=settings, events=events, now=system_clock())

    async with own_db.autocommit() as conn:
        rows = {
            r["id"]: (r["status"], r["step"])
            for r in await conn.fetch("SELECT id, status, step FROM orders")
        }
        history = await conn.fetch(
            "SELECT order_id, status, step, event FROM order_history ORDER BY seq"
        )
        outbox = await conn.fetch(
            "SELECT key, type, envelope->>'correlation_id' AS correlation FROM outbox"
            " WHERE type <> 'ReserveStock' ORDER BY id"
        )
    assert rows == {
        a: ("PENDING", "PAYING"),
        b: ("PENDING", "DEBITING"),
        c: ("FAILED", "DONE"),
    }
    # Every transition's history, in the order it happened, with the step it led to.
    assert [(h["order_id"], h["step"], h["event"]) for h in history[3:]] == [
        (a, "DEBITING", "StockReserved"),
        (a, "PAYING", "WalletDebited"),
        (b, "DEBITING", "StockReserved"),
        (c, "DONE", "StockReservationFailed"),
        (c, "DONE", "OrderFailed"),
    ]
    # Each message carries the correlation id of the event that caused it.
    assert [(m["key"], m["type"], m["correlation"]) for m in outbox] == [
        (a, "DebitWallet", "corr-a"),
        (b, "DebitWallet", "corr-b"),
        (c, "OrderFailed", None),
    ]


async def test_a_settled_order_is_notified_with_its_json_and_a_waiter_answers_with_it(
    own_db: Database, settings: Settings
) -> None:
    oid = await placed(own_db, settings)
    heard: list[str] = []
    waiters = Waiters(100)

    def on_changed(*args: object) -> None:  # as waiting.listen feeds a process's waiters
        heard.append(str(args[3]))
        waiters.changed(str(args[3]))

    listener = await asyncpg.connect(asyncpg_dsn(own_db.url))
    await listener.add_listener(CHANGED_CHANNEL, on_changed)
    try:
        waiting = asyncio.create_task(
            waiters.wait(
                own_db, oid, until=lambda seen: seen.status != "PENDING", timeout=5, unmet=True
            )
        )
        async with own_db.transaction() as conn:
            await service.apply_events(
                conn, settings=settings, events=[(oid, reserved(oid), None)], now=system_clock()
            )
        failed = StockReservationFailed(
            order_id=oid, operation_id=f"{oid}:place:stock", reason="OUT_OF_STOCK", product_ids=()
        )
        # A reply the current step does not expect: it changes and notifies nothing.
        async with own_db.transaction() as conn:
            await service.apply_events(
                conn, settings=settings, events=[(oid, failed, None)], now=system_clock()
            )
        await poll(lambda: asyncio.sleep(0, len(heard)), until=lambda n: n >= 1)
        assert heard[0] == f"{oid} PENDING -"  # a step in flight: no order in the payload
        assert not waiting.done()

        debit_failed = WalletDebitFailed(
            order_id=oid,
            operation_id=f"{oid}:place:debit",
            user_id="u",
            reason="INSUFFICIENT_BALANCE",
        )
        released = StockReleased(order_id=oid, operation_id=f"{oid}:place:stock")
        async with own_db.transaction() as conn:
            await service.apply_events(
                conn,
                settings=settings,
                events=[(oid, debit_failed, None), (oid, released, None)],
                now=system_clock(),
            )
        waited = await asyncio.wait_for(waiting, timeout=5)
    finally:
        await listener.close()

    row = await service.read_order(own_db, order_id=oid)
    assert row is not None and row.status == "FAILED"
    settled = order_out(row).model_dump_json()
    assert heard[-1] == f"{oid} FAILED - {settled}"
    # The waiter answered with the notification's order, not a row it read.
    assert waited.done and waited.row is None and waited.order_json() == settled
