"""Idempotent consumers: a message's id is recorded in the same transaction as its effect.

A row's outcome is `processed`, `dead-lettered` (shopkit.dead_letters), `redriving` (an
operator sent the dead letter back: the next delivery is let through once) or `redriven`
(that delivery was handled; the letter is marked REDRIVEN in the same transaction).
"""

import uuid

from sqlalchemy import Column, DateTime, String, Table, Uuid, func

from shopkit.db import Transaction, kit_metadata

inbox_table = Table(
    "inbox",
    kit_metadata,
    Column("consumer", String(100), primary_key=True),
    Column("message_id", Uuid, primary_key=True),
    Column("type", String(100), nullable=False),
    Column("outcome", String(20), nullable=False),
    Column("processed_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
)


async def first_delivery(
    tx: Transaction,
    *,
    consumer: str,
    message_id: uuid.UUID,
    type_: str,
    outcome: str = "processed",
) -> bool:
    """Record the message; False when it was already recorded (a redelivery to skip)."""
    recorded = await tx.fetchval(
        "INSERT INTO inbox (consumer, message_id, type, outcome) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT DO NOTHING RETURNING message_id",
        consumer,
        message_id,
        type_,
        outcome,
    )
    return recorded is not None or bool(await _redriven(tx, consumer, [message_id]))


async def first_deliveries(
    tx: Transaction,
    *,
    consumer: str,
    messages: list[tuple[uuid.UUID, str]],
) -> set[uuid.UUID]:
    """Record many messages in one statement; the ids not recorded before (to be handled)."""
    if not messages:
        return set()
    # unnest keeps it one statement whatever the batch size; it runs once per poll.
    rows = await tx.fetch(
        "INSERT INTO inbox (consumer, message_id, type, outcome)"
        " SELECT $1, m, t, 'processed' FROM unnest($2::uuid[], $3::text[]) AS u(m, t)"
        " ON CONFLICT DO NOTHING RETURNING message_id",
        consumer,
        [m for m, _ in messages],
        [t for _, t in messages],
    )
    # asyncpg's UUIDs subclass uuid.UUID and hash and compare as it does: no copy needed.
    fresh = {row[0] for row in rows}
    if len(fresh) < len(messages):
        # Only a poll with redeliveries in it pays this statement: the hot path stays one.
        seen = list({m for m, _ in messages if m not in fresh})
        fresh |= await _redriven(tx, consumer, seen)
    return fresh


async def _redriven(tx: Transaction, consumer: str, message_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Of `message_ids` (already in the inbox), those an operator redrove: let through once,
    and their dead letters marked REDRIVEN in the same transaction."""
    rows = await tx.fetch(
        "WITH redriven AS (UPDATE inbox SET outcome = 'redriven', processed_at = now()"
        " WHERE consumer = $1 AND message_id = ANY($2::uuid[]) AND outcome = 'redriving'"
        " RETURNING message_id),"
        " letters AS (UPDATE dead_letters SET status = 'REDRIVEN'"
        " WHERE consumer = $1 AND message_id IN (SELECT message_id FROM redriven)"
        " AND status = 'REDRIVING')"
        " SELECT message_id FROM redriven",
        consumer,
        message_ids,
    )
    return {row[0] for row in rows}
