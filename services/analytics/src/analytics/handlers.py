"""The projection consumer: order and catalog events, applied in batches."""

import asyncio
from collections.abc import Sequence

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from analytics.consumer import BatchConsumer, Delivery
from analytics.projection import CONSUMER, HANDLED, project
from analytics.settings import Settings


async def apply(session: AsyncSession, deliveries: Sequence[Delivery], settings: Settings) -> int:
    return await project(session, deliveries, timezone=settings.timezone)


consumer = BatchConsumer(CONSUMER, handles=HANDLED, apply=apply)


async def run_projection(app: FastAPI) -> None:
    """Subscribe the batch consumer and run the broker until the app stops."""
    settings: Settings = app.state.settings
    broker = app.state.broker
    consumer.attach(
        broker,
        app.state.db,
        settings,
        max_records=settings.batch_max_records,
        batch_timeout_ms=settings.batch_timeout_ms,
    )
    # create_app starts the broker only for kit consumers; this one is ours to start and stop.
    await broker.start()
    try:
        await asyncio.Event().wait()
    finally:
        await broker.stop()
