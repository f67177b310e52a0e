"""Replies from catalog, coupon and wallet: each one is fed to its order's saga."""

from contracts import Envelope
from order import service
from order.saga import REPLIES
from order.saga.events import Reply
from order.settings import Settings
from shopkit.clock import Clock
from shopkit.db import Transaction
from shopkit.messaging import Consumer


def make_consumer(settings: Settings, clock: Clock) -> Consumer:
    """The saga's consumer group: every reply its table waits for, one set-based handler for a
    whole poll."""
    consumer = Consumer("order")

    @consumer.handles(*REPLIES)
    async def on_replies(tx: Transaction, replies: list[tuple[Reply, Envelope]]) -> None:
        events = [(reply.order_id, reply, envelope.correlation_id) for reply, envelope in replies]
        await service.apply_events(tx, settings=settings, events=events, now=clock())

    return consumer
