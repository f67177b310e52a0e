"""Dead letters: messages a consumer could not handle, kept in the service's own database.

Every dead letter is a row here (migration 0003 of every service), listable and redrivable by
an operator (shopkit.ops), and a copy on `<topic>.dlt` (kept forever, see kafka_admin).

A letter is DEAD (listed), REDRIVING (sent back to its topic, not yet handled) or REDRIVEN
(handled: gone from the list, kept with who redrove it). One message has one letter per
consumer: failing again after a redrive puts the same letter back to DEAD.

Redrive is exactly once by way of the inbox: it marks the consumer's inbox row of the message
`redriving` and queues the original envelope (same message id, same key) on its original topic,
all in one transaction. The inbox lets a `redriving` message through once (shopkit.inbox), and
that same transaction marks the letter REDRIVEN; other consumer groups of the topic skip it as
the duplicate it is for them.
"""

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from pydantic import ValidationError
from sqlalchemy import BigInteger, Column, DateTime, Integer, String, Table, Text, Uuid, func
from sqlalchemy.dialects.postgresql import JSONB

from contracts import Envelope
from shopkit.clock import system_clock
from shopkit.db import Database, json_text, kit_metadata
from shopkit.errors import Problem
from shopkit.outbox import publish

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

DEAD, REDRIVING, REDRIVEN = "DEAD", "REDRIVING", "REDRIVEN"


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
    already dead-lettered (or applied) on an earlier delivery; a redriven message that fails
    again puts its letter back to DEAD (attempts added up, the new error)."""
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
    async with db.transaction() as conn:
        if envelope is None:
            # No message id to record in the inbox: the record's position tells a redelivery.
            if partition is not None and await conn.fetchval(
                "SELECT 1 FROM dead_letters WHERE consumer = $1 AND topic = $2"
                ' AND partition = $3 AND "offset" = $4',
                consumer,
                topic,
                partition,
                offset,
            ):
                return
        elif await conn.fetchval(_FAILED_AGAIN, consumer, envelope.message_id):
            await conn.execute(
                "UPDATE dead_letters SET status = 'DEAD', error = $3, attempts = attempts + $4,"
                " dead_at = now() WHERE consumer = $1 AND message_id = $2",
                consumer,
                envelope.message_id,
                repr(error),
                attempts,
            )
            await publish(conn, dead, topic=f"{topic}.dlt")
            return
        elif not await conn.fetchval(
            "INSERT INTO inbox (consumer, message_id, type, outcome)"
            " VALUES ($1, $2, $3, 'dead-lettered') ON CONFLICT DO NOTHING RETURNING true",
            consumer,
            envelope.message_id,
            envelope.type,
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
        await publish(conn, dead, topic=f"{topic}.dlt")


# A redriven message that failed again: its inbox row goes back to dead-lettered.
_FAILED_AGAIN = (
    "UPDATE inbox SET outcome = 'dead-lettered', processed_at = now()"
    " WHERE consumer = $1 AND message_id = $2 AND outcome = 'redriving' RETURNING true"
)

LETTER_COLUMNS = (
    'id, consumer, topic, partition, "offset", key, message_id, type, payload, error,'
    " attempts, dead_at, status, redriven_at, redriven_by"
)


async def list_letters(
    conn: asyncpg.Connection,
    *,
    status: str,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Letters in `status`, oldest first (the order they died in), from after `after`."""
    if after is None:
        return await conn.fetch(
            f"SELECT {LETTER_COLUMNS} FROM dead_letters WHERE status = $1"
            " ORDER BY dead_at, id LIMIT $2",
            status,
            limit,
        )
    return await conn.fetch(
        f"SELECT {LETTER_COLUMNS} FROM dead_letters WHERE status = $1"
        " AND (dead_at, id) > ($3, $4) ORDER BY dead_at, id LIMIT $2",
        status,
        limit,
        *after,
    )


async def get_letter(conn: asyncpg.Connection, letter_id: uuid.UUID) -> asyncpg.Record:
    """One letter; 404 DEAD_LETTER_NOT_FOUND."""
    row = await conn.fetchrow(f"SELECT {LETTER_COLUMNS} FROM dead_letters WHERE id = $1", letter_id)
    if row is None:
        raise Problem(404, "DEAD_LETTER_NOT_FOUND", "no dead letter with this id")
    return row


async def redrive(
    db: Database,
    *,
    letter_id: uuid.UUID,
    by: str,
    now: datetime,
    window: timedelta,
) -> asyncpg.Record:
    """Send a DEAD letter's message back to its topic, to be handled again exactly once.

    409 DEAD_LETTER_NOT_DEAD when it is not DEAD (a second redrive does nothing);
    409 DEAD_LETTER_NOT_REDRIVABLE when the record was not an envelope at all;
    409 DEAD_LETTER_TOO_OLD when its message is older than `window`: other consumer groups
    of the topic may have pruned their inbox row of it and would apply it a second time."""
    async with db.transaction() as conn:
        letter = await conn.fetchrow(
            f"SELECT {LETTER_COLUMNS} FROM dead_letters WHERE id = $1 FOR UPDATE", letter_id
        )
        if letter is None:
            raise Problem(404, "DEAD_LETTER_NOT_FOUND", "no dead letter with this id")
        if letter["status"] != DEAD:
            raise Problem(
                409,
                "DEAD_LETTER_NOT_DEAD",
                f"this letter is {letter['status']}: it was redriven already",
            )
        envelope = _envelope_of(letter)
        if now - envelope.occurred_at > window:
            raise Problem(
                409,
                "DEAD_LETTER_TOO_OLD",
                f"its message is older than {window.days} days: other consumers of the topic no"
                " longer remember it and would apply it again",
            )
        redriven = await conn.fetchrow(
            "UPDATE dead_letters SET status = 'REDRIVING', redriven_at = $2, redriven_by = $3"
            f" WHERE id = $1 RETURNING {LETTER_COLUMNS}",
            letter_id,
            now,
            by,
        )
        # The inbox lets this message through once (shopkit.inbox.first_deliveries).
        await conn.execute(
            "INSERT INTO inbox (consumer, message_id, type, outcome)"
            " VALUES ($1, $2, $3, 'redriving')"
            " ON CONFLICT (consumer, message_id) DO UPDATE SET outcome = 'redriving'",
            letter["consumer"],
            envelope.message_id,
            envelope.type,
        )
        await publish(conn, envelope, topic=letter["topic"])
    log.warning(
        "dead letter redriven",
        extra={
            "fields": {
                "letter": str(letter_id),
                "by": by,
                "consumer": letter["consumer"],
                "topic": letter["topic"],
                "message_id": str(envelope.message_id),
            }
        },
    )
    return redriven


def _envelope_of(letter: asyncpg.Record) -> Envelope:
    if letter["message_id"] is None:
        raise Problem(
            409, "DEAD_LETTER_NOT_REDRIVABLE", "the record was not a message envelope at all"
        )
    try:
        return Envelope.model_validate(letter["payload"])
    except ValidationError as exc:
        raise Problem(
            409, "DEAD_LETTER_NOT_REDRIVABLE", "the record was not a message envelope at all"
        ) from exc


async def dead_ids(db: Database, *, limit: int) -> list[uuid.UUID]:
    """The ids of up to `limit` DEAD letters, oldest first."""
    async with db.autocommit() as conn:
        rows = await conn.fetch(
            "SELECT id FROM dead_letters WHERE status = 'DEAD' ORDER BY dead_at, id LIMIT $1",
            limit,
        )
    return [row["id"] for row in rows]
