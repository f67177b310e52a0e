"""Replies from catalog, coupon and wallet: each one is fed to its order's saga."""

import asyncpg

from contracts import Envelope
from contracts.catalog import (
    StockReleased,
    StockReservationFailed,
    StockReserved,
    StockReturned,
)
from contracts.coupon import CouponReleased, CouponReservationFailed, CouponReserved
from contracts.wallet import WalletDebited, WalletDebitFailed, WalletRefunded
from order import service
from order.settings import Settings
from shopkit.clock import Clock
from shopkit.messaging import Consumer

REPLIES = (
    StockReserved,
    StockReservationFailed,
    StockReleased,
    StockReturned,
    CouponReserved,
    CouponReservationFailed,
    CouponReleased,
    WalletDebited,
    WalletDebitFailed,
    WalletRefunded,
)

Reply = (
    StockReserved
    | StockReservationFailed
    | StockReleased
    | StockReturned
    | CouponReserved
    | CouponReservationFailed
    | CouponReleased
    | WalletDebited
    | WalletDebitFailed
    | WalletRefunded
)


def make_consumer(settings: Settings, clock: Clock) -> Consumer:
    """The saga's consumer group: every reply type, one handler."""
    consumer = Consumer("order")

    async def on_reply(conn: asyncpg.Connection, reply: Reply, _: Envelope) -> None:
        await service.apply_event(
            conn, settings=settings, order_id=reply.order_id, event=reply, now=clock()
        )

    for reply_type in REPLIES:
        consumer.handles_raw(reply_type)(on_reply)  # type: ignore[arg-type]
    return consumer
