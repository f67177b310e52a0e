"""Replies from catalog, coupon and wallet: each one is fed to its order's saga."""

import asyncpg

from contracts import Envelope
from contracts.catalog import (
    StockReleased,
    StockReservationFailed,
    StockReserved,
    StockReturned,
)
from contracts.coupon import (
    CouponReleased,
    CouponRepriced,
    CouponRepricingFailed,
    CouponReservationFailed,
    CouponReserved,
)
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
    CouponRepriced,
    CouponRepricingFailed,
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
    | CouponRepriced
    | CouponRepricingFailed
    | CouponReleased
    | WalletDebited
    | WalletDebitFailed
    | WalletRefunded
)


def make_consumer(settings: Settings, clock: Clock) -> Consumer:
    """The saga's consumer group: every reply type, one set-based handler for a whole poll."""
    consumer = Consumer("order")

    @consumer.handles_batch(*REPLIES)
    async def on_replies(conn: asyncpg.Connection, replies: list[tuple[Reply, Envelope]]) -> None:
        events = [(reply.order_id, reply, envelope.correlation_id) for reply, envelope in replies]
        await service.apply_events(conn, settings=settings, events=events, now=clock())

    return consumer
