"""Idempotent consumers: a message's id is recorded in the same transaction as its effect."""

import uuid
from datetime import datetime

from sqlalchemy import DateTime, String, func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from shopkit.db import Base


class InboxMessage(Base):
    __tablename__ = "inbox"

    consumer: Mapped[str] = mapped_column(String(100), primary_key=True)
    message_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    outcome: Mapped[str] = mapped_column(String(20), default="processed")
    processed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


async def first_delivery(
    session: AsyncSession,
    *,
    consumer: str,
    message_id: uuid.UUID,
    type_: str,
    outcome: str = "processed",
) -> bool:
    """Record the message; False when it was already recorded (a redelivery to skip)."""
    result = await session.execute(
        insert(InboxMessage)
        .values(consumer=consumer, message_id=message_id, type=type_, outcome=outcome)
        .on_conflict_do_nothing()
        .returning(InboxMessage.message_id)
    )
    return result.scalar_one_or_none() is not None
