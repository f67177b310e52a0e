"""A batch Kafka consumer: one transaction per batch, inbox dedup per message, bounded retries.

The kit's Consumer commits one transaction per message; a projection that only adds numbers
goes much faster when a whole poll's worth of events shares one transaction and one upsert per
table. When the batch transaction fails, its messages are applied one by one (with the kit's
bounded retries), so a poison message is dead-lettered alone instead of blocking the batch.
Offsets are committed after the transaction (NACK_ON_ERROR rewinds every partition otherwise).
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from contracts import Envelope, Message
from shopkit.db import Database
from shopkit.messaging import LONG_POLL_MS, dead_letter, lazy_commits, long_poll, raw_records
from shopkit.settings import ServiceSettings

log = logging.getLogger("analytics.consumer")


@dataclass(frozen=True)
class Delivery:
    """One decoded message of a batch, with the topic it came from (without namespace)."""

    topic: str
    envelope: Envelope
    message: Message


# (session, deliveries, settings) -> how many were new; runs inside the batch's transaction.
ApplyBatch = Callable[[AsyncSession, Sequence[Delivery], Any], Awaitable[int]]


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

        @subscriber(decoder=raw_records)
        async def consume(records: Any) -> None:
            raw = [(r.topic.removeprefix(settings.kafka_namespace), r.value) for r in records]
            await self.process(raw, db=db, settings=settings)

    async def process(
        self,
        records: Sequence[tuple[str, bytes | None]],
        *,
        db: Database,
        settings: ServiceSettings,
    ) -> int:
        """Apply a batch of (topic, value) records; the number of new messages applied."""
        deliveries: list[Delivery] = []
        broken: list[tuple[str, bytes | None, Envelope | None, Exception]] = []
        for topic, value in records:
            try:
                delivery = self.decode(topic, value)
            except Undecodable as exc:
                broken.append((topic, value, exc.envelope, exc.error))
                continue
            if delivery is not None:
                deliveries.append(delivery)
        for topic, value, envelope, error in broken:
            await self._dead_letter(db, topic, envelope, value, error)
        try:
            async with db.transaction() as session:
                return await self.apply(session, deliveries, settings)
        except Exception as exc:
            log.warning("batch failed, applying one by one", extra={"fields": {"error": repr(exc)}})
        applied = 0
        for delivery in deliveries:
            applied += await self._apply_one(db, settings, delivery)
        return applied

    def decode(self, topic: str, value: bytes | None) -> Delivery | None:
        """The record as a Delivery; None for a type this consumer does not handle."""
        envelope: Envelope | None = None
        try:
            envelope = Envelope.model_validate(orjson.loads(value or b""))
            message_type = self.types.get(envelope.type)
            if message_type is None:
                return None  # another consumer's message on a shared topic
            message = message_type.model_validate(envelope.payload)
        except (ValidationError, orjson.JSONDecodeError) as exc:
            raise Undecodable(exc, envelope) from exc
        return Delivery(topic=topic, envelope=envelope, message=message)

    async def _apply_one(self, db: Database, settings: ServiceSettings, delivery: Delivery) -> int:
        error: Exception | None = None
        for attempt in range(1, settings.consumer_max_attempts + 1):
            try:
                async with db.transaction() as session:
                    return await self.apply(session, [delivery], settings)
            except Exception as exc:
                error = exc
                log.warning(
                    "event failed",
                    extra={
                        "fields": {
                            "type": delivery.envelope.type,
                            "attempt": attempt,
                            "error": repr(exc),
                        }
                    },
                )
                await asyncio.sleep(min(0.05 * 2**attempt, 2.0))
        assert error is not None
        body = delivery.envelope.model_dump_json().encode()
        await self._dead_letter(db, delivery.topic, delivery.envelope, body, error)
        return 0

    async def _dead_letter(
        self,
        db: Database,
        topic: str,
        envelope: Envelope | None,
        value: bytes | None,
        error: Exception,
    ) -> None:
        try:
            body: Any = orjson.loads(value or b"")
        except orjson.JSONDecodeError:
            body = (value or b"").decode(errors="replace")
        await dead_letter(
            db, consumer=self.name, topic=topic, envelope=envelope, body=body, error=error
        )
