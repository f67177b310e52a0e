"""The projection consumer: order and catalog events, applied in batches."""

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from analytics.consumer import BatchConsumer, Delivery
from analytics.projection import CONSUMER, HANDLED, project
from analytics.settings import Settings


async def apply(session: AsyncSession, deliveries: Sequence[Delivery], settings: Settings) -> int:
    return await project(session, deliveries, timezone=settings.timezone)


consumer = BatchConsumer(CONSUMER, handles=HANDLED, apply=apply)
