"""The projection's consumer: order and catalog events, many to a transaction."""

from analytics.projection import PROJECTED, ProjectedEvent, project
from analytics.settings import Settings
from contracts import Envelope
from shopkit.db import Transaction
from shopkit.messaging import Consumer

CONSUMER = "analytics-projection"


def projection_consumer(settings: Settings) -> Consumer:
    """The projection's consumer group. Its answers may lag a little, so it lingers after a
    poll that was not full: under load one transaction then applies many events."""
    consumer = Consumer(
        CONSUMER, linger_ms=settings.batch_linger_ms, max_records=settings.batch_max_records
    )

    @consumer.handles(*PROJECTED)
    async def count_sales(tx: Transaction, batch: list[tuple[ProjectedEvent, Envelope]]) -> None:
        await project(tx, batch, timezone=settings.timezone)

    return consumer
