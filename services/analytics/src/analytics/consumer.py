"""A batch Kafka consumer: one transaction per batch, inbox dedup per message, bounded retries.

The kit's Consumer commits one transaction per message; a projection that only adds numbers
goes much faster when a whole poll's worth of events shares one transaction and one upsert per
table. When the batch transaction fails because the database is away or busy, the batch waits
and is tried again (the kit's rule, `shopkit.faults`: never dead-lettered for that); when it
fails otherwise, its messages are applied one by one (with the kit's bounded retries), so a
poison message is dead-lettered alone instead of blocking the batch.
Offsets are committed after the transaction (NACK_ON_ERROR rewinds every partition otherwise).
"""

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import asyncpg
import orjson
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from pydantic import ValidationError

from contracts import Envelope, Message
from shopkit.db import Database
from shopkit.dead_letters import dead_letter
from shopkit.faults import Failed, Patience, StillUnavailable, bounded
from shopkit.messaging import LONG_POLL_MS, lazy_commits, long_poll, raw_records, stopping
from shopkit.settings import ServiceSettings

log = logging.getLogger("analytics.consumer")


class Record(NamedTuple):
    """A polled record: its topic (without namespace), value, partition and offset."""

    topic: str
    value: bytes | None
    partition: int
    offset: int


# What `BatchConsumer.process` takes: (topic, value), or a Record that also says where it was.
RawRecord = tuple[str, bytes | None] | Record


@dataclass(frozen=True)
class Delivery:
    """One decoded message of a batch, with the topic it came from (without namespace) and,
    when known, the record it came in (for its dead letter)."""

    topic: str
    envelope: Envelope
    message: Message
    record: "RawRecord | None" = None


# (connection, deliveries, settings) -> how many were new; runs inside the batch's transaction.
ApplyBatch = Callable[[asyncpg.Connection, Sequence[Delivery], Any], Awaitable[int]]


class Undecodable(Exception):
    """A record that is not an envelope of the type it claims."""

    def __init__(self, error: Exception, envelope: Envelope | None) -> None:
        super().__init__(repr(error))
        self.error = error
        self.envelope = envelope


class BatchConsumer:
    """A consumer group that applies whole batches of the message types it handles."""

    def __init__(self, name: str, *, handles: Iterable[type[Message]], apply: ApplyBatch) -> None:
        self.name = name
        self.types = {t.type_name(): t for t in handles}
        self.apply = apply
        self._stopping: Callable[[], bool] | None = None

    @property
    def topics(self) -> list[str]:
        return sorted({t.TOPIC.name for t in self.types.values()})

    @property
    def handled_types(self) -> dict[str, type[Message]]:
        return dict(self.types)

    def attach(
        self,
        broker: KafkaBroker,
        db: Database,
        settings: ServiceSettings,
    ) -> None:
        """Subscribe this consumer's group to its topics on `broker`, in batches.

        A projection can wait a little: after a poll that was not full, the next one comes
        `batch_linger_ms` later (the kit's `long_poll`), so under load a batch holds many
        events instead of the one or two that arrived since the last poll."""
        max_records = int(getattr(settings, "batch_max_records", 500))
        linger_ms = int(getattr(settings, "batch_linger_ms", 200))
        subscriber = broker.subscriber(
            *[settings.topic(t) for t in self.topics],
            batch=True,
            max_records=max_records,
            batch_timeout_ms=LONG_POLL_MS,
            group_id=settings.group(self.name),
            ack_policy=AckPolicy.NACK_ON_ERROR,
            auto_offset_reset="earliest",
            title=f"{self.name}:{','.join(self.topics)}",
        )
        long_poll(subscriber, max_records, linger_ms=linger_ms)
        lazy_commits(subscriber, settings.consumer_commit_interval_ms / 1000)
        self._stopping = stopping(subscriber)

        @subscriber(decoder=raw_records)
        async def consume(records: Any) -> None:
            raw = [
                Record(
                    r.topic.removeprefix(settings.kafka_namespace), r.value, r.partition, r.offset
                )
                for r in records
            ]
            await self.process(raw, db=db, settings=settings)

    async def process(
        self,
        records: Sequence[RawRecord],
        *,
        db: Database,
        settings: ServiceSettings,
    ) -> int:
        """Apply a batch of (topic, value) records (or `Record`s, which say where each was);
        the number of new messages applied.

        A transient failure (the database away or busy) is waited out in place, the whole
        batch again, and past `consumer_repoll_after_s` raised (`StillUnavailable`), so the
        poll is sought back and polled again; it is never dead-lettered. Any other failure of
        the batch applies its messages one by one, each dead-lettered alone after
        `consumer_max_attempts` failures.
        """
        patience = Patience.for_poll(settings, self._stopping)
        deliveries: list[Delivery] = []
        for record in records:
            try:
                delivery = self.decode(record[0], record[1], record)
            except Undecodable as exc:
                await self._dead_letter(db, patience, record, exc.envelope, exc.error, attempts=1)
                continue
            if delivery is not None:
                deliveries.append(delivery)

        async def all_at_once() -> int:
            async with db.raw_transaction() as tx:
                return await self.apply(tx, deliveries, settings)

        try:
            return await patience.until_done(all_at_once, consumer=self.name)
        except StillUnavailable:
            raise
        except Exception as exc:
            log.warning("batch failed, applying one by one", extra={"fields": {"error": repr(exc)}})
        applied = 0
        for delivery in deliveries:
            applied += await self._apply_one(db, settings, patience, delivery)
        return applied

    def decode(
        self, topic: str, value: bytes | None, record: RawRecord | None = None
    ) -> Delivery | None:
        """The record as a Delivery; None for a type this consumer does not handle. Fields a
        newer producer added are ignored (contracts refuse them only when a message is made)."""
        envelope: Envelope | None = None
        try:
            envelope = Envelope.model_validate(orjson.loads(value or b""))
            message_type = self.types.get(envelope.type)
            if message_type is None:
                return None  # another consumer's message on a shared topic
            message = message_type.model_validate(envelope.payload, extra="ignore")
        except (ValidationError, orjson.JSONDecodeError) as exc:
            raise Undecodable(exc, envelope) from exc
        return Delivery(topic=topic, envelope=envelope, message=message, record=record)

    async def _apply_one(
        self, db: Database, settings: ServiceSettings, patience: Patience, delivery: Delivery
    ) -> int:
        async def once() -> int:
            async with db.raw_transaction() as tx:
                return await self.apply(tx, [delivery], settings)

        outcome = await bounded(
            once,
            attempts=settings.consumer_max_attempts,
            patience=patience,
            consumer=self.name,
            type=delivery.envelope.type,
        )
        if not isinstance(outcome, Failed):
            return outcome
        record = delivery.record or (
            delivery.topic,
            delivery.envelope.model_dump_json().encode(),
        )
        await self._dead_letter(
            db, patience, record, delivery.envelope, outcome.error, attempts=outcome.attempts
        )
        return 0

    async def _dead_letter(
        self,
        db: Database,
        patience: Patience,
        record: RawRecord,
        envelope: Envelope | None,
        error: Exception,
        *,
        attempts: int,
    ) -> None:
        """Dead-letter `record`; writing it waits out a transient failure like any other work."""
        topic, value = record[0], record[1]
        try:
            body: Any = orjson.loads(value or b"")
        except orjson.JSONDecodeError:
            body = (value or b"").decode(errors="replace")
        where = record if isinstance(record, Record) else None
        await patience.until_done(
            lambda: dead_letter(
                db,
                consumer=self.name,
                topic=topic,
                envelope=envelope,
                body=body,
                error=error,
                attempts=attempts,
                partition=where.partition if where else None,
                offset=where.offset if where else None,
            ),
            consumer=self.name,
        )
