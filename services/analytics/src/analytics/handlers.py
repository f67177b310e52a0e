"""The projection consumer: order and catalog events, applied in batches."""

from collections.abc import Sequence

import asyncpg

from analytics.consumer import BatchConsumer, Delivery
from analytics.projection import PROJECTED, project
from analytics.settings import Settings
from shopkit.inbox import first_deliveries

CONSUMER = "analytics-projection"


async def apply(tx: asyncpg.Connection, deliveries: Sequence[Delivery], settings: Settings) -> int:
    unique = {d.envelope.message_id: d for d in reversed(deliveries)}
    new = await first_deliveries(
        tx, consumer=CONSUMER, messages=[(i, d.envelope.type) for i, d in unique.items()]
    )
    fresh = [
        d for d in deliveries if d.envelope.message_id in new and unique[d.envelope.message_id] is d
    ]
    batch = [(d.message, d.envelope) for d in fresh]
    await project(tx, batch, timezone=settings.timezone)  # type: ignore[arg-type]
    return len(fresh)


consumer = BatchConsumer(CONSUMER, handles=PROJECTED, apply=apply)
