"""Dead letters: messages a consumer could not handle, kept in the service's own database.

The `.dlt` topics expire with Kafka's retention; an operator's queue must not, so every dead
letter is also a row here (migration 0003 of every service), listable and redrivable.
"""

import logging
import uuid
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, Integer, String, Table, Text, Uuid, func
from sqlalchemy.dialects.postgresql import JSONB

from contracts import Envelope
from shopkit.clock import system_clock
from shopkit.db import Database, json_text, kit_metadata
from shopkit.inbox import first_delivery
from shopkit.outbox import queue_envelope

log = logging.getLogger("shopkit.dead_letters")

dead_letters_table = Table(
    "dead_letters",
    kit_metadata,
    Column("id", Uuid, primary_key=True),
    Column("consumer", String(100), nullable=False),
    Column("topic", String(200), nullable=False),
    Column("partition", Integer),
    Column("offset", BigInteger),
    Column("key", String(200)),
    Column("message_id", Uuid),
    Column("type", String(100)),
    Column("payload", JSONB, nullable=False),
    Column("error", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("dead_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
    Column("status", String(20), nullable=False, server_default="DEAD"),
    Column("redriven_at", DateTime(timezone=True)),
    Column("redriven_by", String(100)),
)


async def dead_letter(
    db: Database,
    *,
    consumer: str,
    topic: str,
    envelope: Envelope | None,
    body: Any,
    error: BaseException,
    attempts: int = 1,
    partition: int | None = None,
    offset: int | None = None,
) -> None:
    """Keep a message that cannot be handled: a row here, a copy on `<topic>.dlt` (via the
    outbox), and its inbox entry marked dead-lettered, all in one transaction, so its
    partition moves on and it is never silently lost. Nothing happens when the message was
    already dead-lettered (or applied) on an earlier delivery."""
    log.error(
        "dead-lettering message",
        extra={"fields": {"consumer": consumer, "topic": topic, "error": repr(error)}},
    )
    dead = Envelope(
        message_id=uuid.uuid4(),
        type="DeadLetter",
        correlation_id=envelope.correlation_id if envelope else None,
        causation_id=str(envelope.message_id) if envelope else None,
        occurred_at=system_clock(),
        key=envelope.key if envelope else "unknown",
        payload={"consumer": consumer, "topic": topic, "error": repr(error), "message": body},
    )
    async with db.raw_transaction() as conn:
        if envelope is not None and not await first_delivery(
            conn,
            consumer=consumer,
            message_id=envelope.message_id,
            type_=envelope.type,
            outcome="dead-lettered",
        ):
            return
        await conn.execute(
            'INSERT INTO dead_letters (id, consumer, topic, partition, "offset", key,'
            " message_id, type, payload, error, attempts)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11)",
            dead.message_id,
            consumer,
            topic,
            partition,
            offset,
            envelope.key if envelope else None,
            envelope.message_id if envelope else None,
            envelope.type if envelope else None,
            json_text(body),
            repr(error),
            attempts,
        )
        await queue_envelope(conn, f"{topic}.dlt", dead)
