"""Kafka consumers: route by message type, one transaction per poll, bounded retries.

One kind of handler (`shopkit.handling`): `fn(tx, [(message, envelope), ...])`, registered with
`Consumer.handles(*types)`, gets every fresh message of a poll that it handles at once, on the
poll's transaction; `each` adapts a per-message `fn(tx, message, envelope)` to it. The consumer
records the messages in the inbox in the same transaction as the handlers' effects, so a
redelivery is skipped. If anything in the poll fails, it is rolled back and handled again one
message per transaction. Offsets are committed only after that (`shopkit.subscription`).

A failure that says the database or the broker is away or busy (`shopkit.faults`) is waited out
with capped backoff, however long it lasts, and never dead-lettered; a message that keeps
failing otherwise is retried a bounded number of times and then written to `<topic>.dlt`
through the outbox, so it never blocks its partition and is never silently dropped.
"""

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from pydantic import ValidationError

from contracts import Envelope, Message, Topic
from shopkit import tracing
from shopkit.db import Database
from shopkit.dead_letters import dead_letter
from shopkit.faults import Failed, Patience, StillUnavailable, bounded
from shopkit.handling import Each, Handler, HandlerFn, calls, correlated, each
from shopkit.inbox import first_deliveries, first_delivery
from shopkit.settings import ServiceSettings
from shopkit.subscription import Subscription

__all__ = ["Consumer", "Delivery", "Each", "correlated", "each"]

log = logging.getLogger("shopkit.messaging")


@dataclass(frozen=True)
class Delivery:
    """One polled record: its topic without the namespace, the record, its decoded body."""

    topic: str
    record: ConsumerRecord
    body: Any

    @classmethod
    def of(cls, record: ConsumerRecord, *, namespace: str = "") -> "Delivery":
        """A record as polled from a topic of `namespace`."""
        return cls(record.topic.removeprefix(namespace), record, _decode(record.value))


class Consumer:
    """A consumer group of one service: which message types it handles, and how."""

    def __init__(
        self,
        name: str,
        *,
        topics: tuple[Topic, ...] = (),
        linger_ms: int = 0,
        max_records: int | None = None,
    ) -> None:
        """`linger_ms` > 0 only for a consumer whose latency matters little (a projection): a
        poll that was not full is followed by the next one that much later, so under load a
        poll holds many records (see `shopkit.subscription`). `max_records` defaults to the
        settings' `consumer_batch_size`."""
        self.name = name
        self.linger_ms = linger_ms
        self.max_records = max_records
        self.handlers: dict[str, tuple[type[Message], Handler]] = {}
        self._topics = {t.name for t in topics}

    def handles(self, *message_types: type[Message]) -> Callable[[HandlerFn], HandlerFn]:
        """Register `fn(tx, [(message, envelope), ...])` for all of `message_types` (or an
        `each` adapter of a per-message function).

        It gets every fresh message of a poll that it handles at once (a round of them when a
        poll mixes handlers, see `shopkit.handling.calls`), grouped by key and in poll order
        within a key, on the poll's transaction: it can read and write them in a few statements
        for all, not a few each. When a poll is retried one message per transaction, it gets
        lists of one. Messages it publishes should take each one's correlation id
        (`correlated`)."""

        def register(fn: HandlerFn) -> HandlerFn:
            for message_type in message_types:
                self._register(message_type, Handler(fn))
            return fn

        return register

    def _register(self, message_type: type[Message], handler: Handler) -> None:
        self.handlers[message_type.type_name()] = (message_type, handler)
        self._topics.add(message_type.TOPIC.name)

    @property
    def topics(self) -> list[str]:
        return sorted(self._topics)

    @property
    def handled_types(self) -> dict[str, type[Message]]:
        return {name: message_type for name, (message_type, _) in self.handlers.items()}

    def subscribe(self, db: Database, settings: ServiceSettings) -> Subscription:
        """This consumer's group on its topics (not started): each poll of up to
        `consumer_batch_size` records (`max_records`) is handled in one transaction (see
        `process_poll`), its offsets committed once it is."""

        def stopping() -> bool:
            return subscription.stopping

        async def handle(records: list[ConsumerRecord]) -> None:
            tracing.serving(settings.service_name, self.name)
            polled = [Delivery.of(r, namespace=settings.kafka_namespace) for r in records]
            await self.process_poll(polled, db=db, settings=settings, stopping=stopping)

        subscription = Subscription(
            self.name,
            AIOKafkaConsumer(
                bootstrap_servers=settings.kafka_bootstrap,
                group_id=settings.group(self.name),
                client_id=settings.service_name,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
            ),
            [settings.topic(t) for t in self.topics],
            handle,
            max_records=self.max_records or settings.consumer_batch_size,
            linger_ms=self.linger_ms,
            commit_interval=settings.consumer_commit_interval_ms / 1000,
        )
        return subscription

    async def process_poll(
        self,
        polled: list[Delivery],
        *,
        db: Database,
        settings: ServiceSettings,
        stopping: Callable[[], bool] | None = None,
    ) -> None:
        """Handle a poll's messages (grouped by key, each key's in poll order) in one
        transaction with their inbox rows.

        A transient failure (the database or the broker away or busy) is waited out: the same
        poll is tried again in place with capped backoff, nothing after it is taken, and past
        `consumer_repoll_after_s` the poll is handed back (`StillUnavailable`: sought back and
        polled again, which keeps the consumer in its group). Any other failure rolls the
        transaction back and the poll is handled again one message per transaction: records of
        one key in order, one after the other; different keys concurrently; a message that fails
        the same way `consumer_max_attempts` times is dead-lettered. A wait ends at once when
        `stopping()` says the consumer is being stopped.
        """
        patience = Patience.for_poll(settings, stopping)
        ready: list[tuple[Delivery, Envelope, Message, Handler]] = []
        for item in polled:
            parsed = await self._parse(item, db=db, patience=patience)
            if parsed is not None:
                ready.append((item, *parsed))
        if not ready:
            return
        # Grouped by key, each key's records still in poll order: two transactions that lock
        # rows by key (an order's saga, say) then take them in the same order and never deadlock.
        ready.sort(key=lambda entry: entry[0].record.key or b"")
        try:
            await patience.until_done(
                lambda: self._in_one_transaction(ready, db=db), consumer=self.name
            )
            return
        except StillUnavailable:
            raise
        except Exception as exc:
            log.warning(
                "poll failed as one transaction; handling its messages one by one",
                extra={"fields": {"consumer": self.name, "size": len(ready), "error": repr(exc)}},
            )
        by_key: dict[Any, list[tuple[Delivery, Envelope, Message, Handler]]] = {}
        for entry in ready:
            record = entry[0].record
            by_key.setdefault(record.key or (record.topic, record.partition), []).append(entry)

        async def in_order(chain: list[tuple[Delivery, Envelope, Message, Handler]]) -> None:
            for item, envelope, message, handler in chain:
                with correlated(envelope):
                    await self._handle(db, settings, patience, item, envelope, message, handler)

        await _all_or_none([in_order(chain) for chain in by_key.values()])

    async def _in_one_transaction(
        self, ready: list[tuple[Delivery, Envelope, Message, Handler]], *, db: Database
    ) -> None:
        async with db.transaction() as tx:
            fresh = await first_deliveries(
                tx,
                consumer=self.name,
                messages=[(envelope.message_id, envelope.type) for _, envelope, _, _ in ready],
            )
            # A message handled before, or a second copy in this very poll, is left out.
            todo = []
            for item, envelope, message, handler in ready:
                if envelope.message_id in fresh:
                    fresh.discard(envelope.message_id)
                    todo.append((item.record.key, handler, message, envelope))
            for handler, items in calls(todo):
                await handler.many(tx, items)

    async def _parse(
        self, item: Delivery, *, db: Database, patience: Patience
    ) -> tuple[Envelope, Message, Handler] | None:
        """The envelope, message and handler of a record; None when it is not ours to handle
        (another consumer's type) or cannot be read at all (then it is dead-lettered).

        Fields a newer producer added are ignored: contracts refuse unknown fields when a
        message is made, not when it is read."""
        envelope: Envelope | None = None
        try:
            envelope = Envelope.model_validate(item.body)
            entry = self.handlers.get(envelope.type)
            if entry is None:
                return None  # another consumer's message on a shared topic
            message_type, handler = entry
            message = message_type.model_validate(envelope.payload, extra="ignore")
        except ValidationError as exc:
            await self._dead_letter(db, patience, item, envelope, exc, attempts=1)
            return None
        return envelope, message, handler

    async def _handle(
        self,
        db: Database,
        settings: ServiceSettings,
        patience: Patience,
        item: Delivery,
        envelope: Envelope,
        message: Message,
        handler: Handler,
    ) -> None:
        async def once() -> None:
            async with db.transaction() as tx:
                if await first_delivery(
                    tx, consumer=self.name, message_id=envelope.message_id, type_=envelope.type
                ):
                    await handler.many(tx, [(message, envelope)])

        outcome = await bounded(
            once,
            attempts=settings.consumer_max_attempts,
            patience=patience,
            consumer=self.name,
            type=envelope.type,
        )
        if isinstance(outcome, Failed):
            await self._dead_letter(
                db, patience, item, envelope, outcome.error, attempts=outcome.attempts
            )

    async def _dead_letter(
        self,
        db: Database,
        patience: Patience,
        item: Delivery,
        envelope: Envelope | None,
        error: Exception,
        *,
        attempts: int,
    ) -> None:
        """Dead-letter `item`; writing it waits out a transient failure like any other work."""
        await patience.until_done(
            lambda: dead_letter(
                db,
                consumer=self.name,
                topic=item.topic,
                envelope=envelope,
                body=item.body,
                error=error,
                attempts=attempts,
                partition=item.record.partition,
                offset=item.record.offset,
            ),
            consumer=self.name,
        )


async def _all_or_none(work: list[Coroutine[Any, Any, None]]) -> None:
    """Run `work` concurrently; when one fails, the others are cancelled (their transactions
    roll back) before the failure is raised, so a poll handed back leaves nothing running."""
    tasks = [asyncio.ensure_future(w) for w in work]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _decode(value: bytes | None) -> Any:
    try:
        return orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return {"undecodable": (value or b"").decode(errors="replace")}
