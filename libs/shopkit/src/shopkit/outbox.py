"""Transactional outbox: messages are rows written in the same transaction as the state change.

`publish` is the only way a service writes messages. The relay (shopkit.relay: one active per
service database, elected by a Postgres advisory lock) sends rows in id order and deletes them
once Kafka has them, so the table holds only what is still to send. Id order is commit order for
any one key as long as the transactions writing that key's messages hold the key's row lock
(they do: stock, wallet, order and coupon rows are locked or updated first). A crash between
sending and deleting re-sends the rows: consumers are idempotent (see inbox.py).
"""

import uuid

from sqlalchemy import BigInteger, Column, DateTime, String, Table, Uuid, func
from sqlalchemy.dialects.postgresql import JSONB

from contracts import Envelope, Message, message_type
from shopkit import tracing
from shopkit.clock import system_clock
from shopkit.db import Transaction, kit_metadata
from shopkit.logs import correlation_id as current_correlation

NOTIFY_CHANNEL = "shop_outbox"
RELAY_LOCK_ID = 7_340_001


outbox_table = Table(
    "outbox",
    kit_metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("message_id", Uuid, nullable=False, unique=True),
    Column("topic", String(200), nullable=False),
    Column("key", String(200), nullable=False),
    Column("type", String(100), nullable=False),
    Column("envelope", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
)


def envelope(
    message: Message,
    *,
    correlation_id: str | None = None,
    causation_id: str | None = None,
    traceparent: str | None = None,
) -> Envelope:
    """`message` in a new envelope; the correlation id defaults to the one in context (the HTTP
    request's, or the message being handled: `shopkit.messaging.correlated`)."""
    correlation_id = correlation_id or current_correlation.get()
    return Envelope(
        message_id=uuid.uuid4(),
        type=message.type_name(),
        version=message.VERSION,
        correlation_id=correlation_id,
        causation_id=causation_id,
        traceparent=traceparent or (tracing.parent_for(correlation_id) if tracing.ON else None),
        occurred_at=system_clock(),
        key=str(getattr(message, message.KEY)),
        payload=message.model_dump(mode="json"),
    )


async def publish(
    tx: Transaction, *items: Message | Envelope, topic: str | None = None
) -> list[Envelope]:
    """Write `items` to the outbox, in order, to be sent when (and only if) `tx` commits.

    A message gets a new envelope (`envelope`); an envelope is written as it is. Each goes to
    its contract's topic unless `topic` is given. One statement for all of them, which also
    wakes the relay: NOTIFY is delivered at commit, once per transaction however many ask."""
    if not items:
        return []
    envelopes = [item if isinstance(item, Envelope) else envelope(item) for item in items]
    topics = [topic or message_type(e.type).TOPIC.name for e in envelopes]
    if len(envelopes) == 1:
        (one,) = envelopes
        await tx.execute(
            _PUBLISH_ONE, one.message_id, topics[0], one.key, one.type, one.model_dump_json()
        )
    else:
        await tx.execute(
            _PUBLISH_MANY,
            [e.message_id for e in envelopes],
            topics,
            [e.key for e in envelopes],
            [e.type for e in envelopes],
            [e.model_dump_json() for e in envelopes],
        )
    return envelopes


_PUBLISH_ONE = (
    "WITH queued AS (INSERT INTO outbox (message_id, topic, key, type, envelope)"
    " VALUES ($1, $2, $3, $4, $5::jsonb))"
    f" SELECT pg_notify('{NOTIFY_CHANNEL}', '')"
)
# Ordinality keeps the ids (the relay's send order) in the order given.
_PUBLISH_MANY = (
    "WITH queued AS (INSERT INTO outbox (message_id, topic, key, type, envelope)"
    " SELECT q.m, q.t, q.k, q.y, q.e::jsonb"
    " FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[])"
    " WITH ORDINALITY AS q(m, t, k, y, e, n) ORDER BY q.n)"
    f" SELECT pg_notify('{NOTIFY_CHANNEL}', '')"
)
