"""Kafka consumers: route by message type, one transaction per message, bounded retries.

A handler is a typed function `(session, message, envelope) -> None`. The consumer records the
message in the inbox in the same transaction as the handler's effect, so a redelivery is skipped.
The offset is committed only after that transaction (NACK_ON_ERROR, never ACK_FIRST). A message
that keeps failing is retried a bounded number of times and then written to `<topic>.dlt`
through the outbox, so it never blocks its partition and is never silently dropped.
"""

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import orjson
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from contracts import Envelope, Message, Topic
from shopkit.clock import system_clock
from shopkit.db import Database
from shopkit.inbox import first_delivery
from shopkit.logs import correlation_id
from shopkit.outbox import add_envelope
from shopkit.settings import ServiceSettings

log = logging.getLogger("shopkit.messaging")

M = TypeVar("M", bound=Message)
Handler = Callable[[AsyncSession, Any, Envelope], Awaitable[None]]


class ConsumerGroup(Protocol):
    """What create_app needs of a consumer: its group name, the types it handles, and how to
    subscribe it. `Consumer` (one message per transaction) is the usual one; a service may
    bring its own, e.g. a batch consumer for a projection."""

    name: str

    @property
    def handled_types(self) -> dict[str, type[Message]]: ...

    def attach(self, broker: KafkaBroker, db: Database, settings: ServiceSettings) -> None: ...


class Consumer:
    """A consumer group of one service: which message types it handles, and how."""

    def __init__(self, name: str, *, topics: tuple[Topic, ...] = ()) -> None:
        self.name = name
        self.handlers: dict[str, tuple[type[Message], Handler]] = {}
        self._topics = {t.name for t in topics}

    def handles(
        self, message_type: type[M]
    ) -> Callable[[Callable[[AsyncSession, M, Envelope], Awaitable[None]]], Handler]:
        def register(fn: Callable[[AsyncSession, M, Envelope], Awaitable[None]]) -> Handler:
            self.handlers[message_type.type_name()] = (message_type, fn)
            self._topics.add(message_type.TOPIC.name)
            return fn

        return register

    @property
    def topics(self) -> list[str]:
        return sorted(self._topics)

    @property
    def handled_types(self) -> dict[str, type[Message]]:
        return {name: message_type for name, (message_type, _) in self.handlers.items()}

    def attach(self, broker: KafkaBroker, db: Database, settings: ServiceSettings) -> None:
        """Subscribe this consumer's group to its topics on `broker`.

        Records come in polls of up to `consumer_batch_size`. Records of one key are handled in
        order, one after the other; different keys (different orders, users, coupons) are
        handled concurrently, each message in its own transaction. Offsets are committed once
        the whole poll is handled. Without this, every message waited for the previous one's
        commit and its offset commit, and a consumer managed ~10 saga steps per second.
        """
        subscriber = broker.subscriber(
            *[settings.topic(t) for t in self.topics],
            group_id=settings.group(self.name),
            ack_policy=AckPolicy.NACK_ON_ERROR,
            auto_offset_reset="earliest",
            batch=True,
            max_records=settings.consumer_batch_size,
            batch_timeout_ms=50,
            title=f"{self.name}:{','.join(self.topics)}",
        )

        @subscriber
        async def consume(_: list[Any], message: KafkaMessage) -> None:
            records = message.raw_message
            records = records if isinstance(records, tuple) else (records,)
            by_key: dict[Any, list[Any]] = {}
            for record in records:
                by_key.setdefault(record.key or (record.topic, record.partition), []).append(record)

            async def in_order(chain: list[Any]) -> None:
                for record in chain:
                    await self.process(
                        _decode(record.value),
                        topic=record.topic.removeprefix(settings.kafka_namespace),
                        db=db,
                        settings=settings,
                    )

            await asyncio.gather(*(in_order(chain) for chain in by_key.values()))

    async def process(
        self, body: dict[str, Any], *, topic: str, db: Database, settings: ServiceSettings
    ) -> None:
        try:
            envelope = Envelope.model_validate(body)
        except ValidationError as exc:
            await dead_letter(
                db, consumer=self.name, topic=topic, envelope=None, body=body, error=exc
            )
            return
        entry = self.handlers.get(envelope.type)
        if entry is None:
            return  # another consumer's message on a shared topic
        message_type, handler = entry
        token = correlation_id.set(envelope.correlation_id)
        try:
            try:
                message = message_type.model_validate(envelope.payload)
            except ValidationError as exc:
                await dead_letter(
                    db, consumer=self.name, topic=topic, envelope=envelope, body=body, error=exc
                )
                return
            await self._handle(db, settings, topic, envelope, message, handler, body)
        finally:
            correlation_id.reset(token)

    async def _handle(
        self,
        db: Database,
        settings: ServiceSettings,
        topic: str,
        envelope: Envelope,
        message: Message,
        handler: Handler,
        body: dict[str, Any],
    ) -> None:
        error: Exception | None = None
        for attempt in range(1, settings.consumer_max_attempts + 1):
            try:
                async with db.transaction() as session:
                    if await first_delivery(
                        session,
                        consumer=self.name,
                        message_id=envelope.message_id,
                        type_=envelope.type,
                    ):
                        await handler(session, message, envelope)
                return
            except Exception as exc:
                error = exc
                log.warning(
                    "handler failed",
                    extra={
                        "fields": {"type": envelope.type, "attempt": attempt, "error": repr(exc)}
                    },
                )
                await asyncio.sleep(min(0.05 * 2**attempt, 2.0))
        assert error is not None
        await dead_letter(
            db, consumer=self.name, topic=topic, envelope=envelope, body=body, error=error
        )


async def dead_letter(
    db: Database,
    *,
    consumer: str,
    topic: str,
    envelope: Envelope | None,
    body: Any,
    error: Exception,
) -> None:
    """Write a message that cannot be handled to `<topic>.dlt` (via the outbox) and mark it
    handled in the consumer's inbox, so its partition moves on and it is never silently lost."""
    log.error("dead-lettering message", extra={"fields": {"topic": topic, "error": repr(error)}})
    dead = Envelope(
        message_id=uuid.uuid4(),
        type="DeadLetter",
        correlation_id=envelope.correlation_id if envelope else None,
        causation_id=str(envelope.message_id) if envelope else None,
        occurred_at=system_clock(),
        key=envelope.key if envelope else "unknown",
        payload={"consumer": consumer, "topic": topic, "error": repr(error), "message": body},
    )
    try:
        async with db.transaction() as session:
            if envelope is not None and not await first_delivery(
                session,
                consumer=consumer,
                message_id=envelope.message_id,
                type_=envelope.type,
                outcome="dead-lettered",
            ):
                return  # dead-lettered (or applied) on an earlier delivery
            await add_envelope(session, f"{topic}.dlt", dead)
    except Exception:
        # Even the dead letter cannot be written (database down?): let Kafka redeliver later.
        await asyncio.sleep(1.0)
        raise


def _decode(value: bytes | None) -> Any:
    try:
        return orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return {"undecodable": (value or b"").decode(errors="replace")}
