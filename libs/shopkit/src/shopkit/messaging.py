"""Kafka consumers: route by message type, one transaction per poll, bounded retries.

One kind of handler: `fn(tx, [(message, envelope), ...])`, registered with
`Consumer.handles(*types)`, gets every fresh message of a poll that it handles at once, on the
poll's transaction; `each` adapts a per-message `fn(tx, message, envelope)` to it. The consumer
records the messages in the inbox in the same transaction as the handlers' effects, so a
redelivery is skipped. If anything in the poll fails, it is rolled back and handled again one
message per transaction. The offset is committed only after that (NACK_ON_ERROR, never
ACK_FIRST; through `OffsetCommitter`, at most every `consumer_commit_interval_ms`).

A failure that says the database or the broker is away or busy (`shopkit.faults`) is waited out
with capped backoff, however long it lasts, and never dead-lettered; a message that keeps
failing otherwise is retried a bounded number of times and then written to `<topic>.dlt`
through the outbox, so it never blocks its partition and is never silently dropped.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain
from typing import Any, Generic, TypeVar
from weakref import WeakKeyDictionary

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.message import KafkaAckableMessage, KafkaMessage
from faststream.message import StreamMessage
from pydantic import ValidationError

from contracts import Envelope, Message, Topic
from shopkit import tracing
from shopkit.db import Database, Transaction
from shopkit.dead_letters import dead_letter
from shopkit.faults import Failed, Patience, StillUnavailable, bounded
from shopkit.inbox import first_deliveries, first_delivery
from shopkit.logs import correlation_id
from shopkit.settings import ServiceSettings

log = logging.getLogger("shopkit.messaging")
# How long one poll may wait for a record. aiokafka's getmany returns as soon as any record has
# been fetched, so this bounds only the idle wait, not a message's latency.
LONG_POLL_MS = 1000

M = TypeVar("M", bound=Message)
Batch = list[tuple[Any, Envelope]]
BatchFn = Callable[[Transaction, Batch], Awaitable[None]]


class Each(Generic[M]):
    """A per-message handler `fn(tx, message, envelope)` as a batch handler (see `each`).
    Called directly it is still the per-message function."""

    def __init__(self, fn: Callable[[Transaction, M, Envelope], Awaitable[None]]) -> None:
        self.fn = fn
        self.__name__ = getattr(fn, "__name__", "each")
        self.__doc__ = fn.__doc__

    async def __call__(self, tx: Transaction, message: M, envelope: Envelope) -> None:
        await self.fn(tx, message, envelope)

    async def batch(self, tx: Transaction, batch: Batch) -> None:
        for message, envelope in batch:
            with correlated(envelope):
                await self.fn(tx, message, envelope)


def each(fn: Callable[[Transaction, M, Envelope], Awaitable[None]]) -> Each[M]:
    """Adapt `fn(tx, message, envelope)` to a batch handler: it is called for each message of
    the batch in order, each under `correlated(envelope)`."""
    return Each(fn)


HandlerFn = TypeVar("HandlerFn", bound=BatchFn | Each[Any])


@dataclass(frozen=True)
class Handler:
    """A registered handler: `fn(tx, [(message, envelope), ...])`, or an `each` adapter."""

    fn: BatchFn | Each[Any]

    async def many(self, tx: Transaction, items: Batch) -> None:
        """Handle `items` in order, all in one call."""
        fn = self.fn
        if isinstance(fn, Each):
            await fn.batch(tx, items)
        elif tracing.ON:
            with tracing.consuming_batch([envelope for _, envelope in items]):
                await fn(tx, items)
        else:
            await fn(tx, items)


def long_poll(subscriber: Any, max_records: int, *, linger_ms: int = 0) -> None:
    """Make a batch subscriber poll again at once after an empty poll.

    FastStream's batch subscriber sleeps `batch_timeout_ms` after every empty poll, so a record
    arriving meanwhile waited up to that long: with a long timeout an order (five hops) lost
    hundreds of milliseconds, and with a short one every idle consumer woke ~50 times a second.
    A long poll that is simply repeated has neither cost.

    With `linger_ms`, a poll that brought fewer than `max_records` records is followed by the
    next one only `linger_ms` after it returned: what arrives meanwhile is fetched and handled
    together, one transaction and one offset commit for many records. That is for a consumer
    whose latency matters little (a projection); a full poll is followed at once, so a backlog
    still drains at full speed.
    """
    next_poll = 0.0

    async def get_msg(consumer: AIOKafkaConsumer) -> tuple[ConsumerRecord, ...]:
        nonlocal next_poll
        wait = next_poll - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        polled = await consumer.getmany(timeout_ms=LONG_POLL_MS, max_records=max_records)
        records = tuple(chain.from_iterable(polled.values()))
        lingering = linger_ms and 0 < len(records) < max_records
        next_poll = time.monotonic() + linger_ms / 1000 if lingering else 0.0
        return records

    subscriber.get_msg = get_msg


class OffsetCommitter:
    """Commits what a consumer has handled at most every `interval` seconds, off its loop.

    FastStream commits after every poll, and the consumer waits for the broker's answer before
    it polls again: an offset commit (a request, a write to `__consumer_offsets`) per poll of
    every consumer. Here a handled poll only records its offsets, and a task commits them
    together at most `interval` seconds later. What is handled is still committed only after
    its transaction (the offsets come from the poll's own records, never from the consumer's
    position, which may already be past a poll being handled); a crash or a rebalance can only
    deliver again what was handled in the last `interval`, which the inbox skips.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._pending: dict[TopicPartition, int] = {}
        # The next offset past what was handled, per partition: lag is measured from here.
        self.handled_through: dict[TopicPartition, int] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._last = 0.0

    def handled(self, consumer: AIOKafkaConsumer, records: tuple[ConsumerRecord, ...]) -> None:
        """The poll of `records` is handled: commit past them (soon)."""
        for record in records:
            partition = TopicPartition(record.topic, record.partition)
            if record.offset >= self._pending.get(partition, -1):
                self._pending[partition] = self.handled_through[partition] = record.offset + 1
        self._consumer = consumer
        if self._pending and (self._task is None or self._task.done()):
            delay = max(0.0, self._last + self.interval - time.monotonic())
            self._task = asyncio.create_task(self._commit_after(delay), name="offset-commit")

    async def _commit_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        await self.flush()

    async def flush(self) -> None:
        """Commit what is pending now."""
        pending, self._pending = self._pending, {}
        if not pending or self._consumer is None:
            return
        self._last = time.monotonic()
        try:
            await self._consumer.commit(pending)
        except Exception as exc:
            log.warning(
                "offset commit failed; what was handled since the last one will be delivered"
                " again (and skipped by the inbox)",
                extra={"fields": {"error": repr(exc)}},
            )


def stopping(subscriber: Any) -> Callable[[], bool]:
    """True once `subscriber` is being stopped. FastStream then waits up to its graceful timeout
    (15 s) for the poll in hand; a poll waiting out an outage hands itself back instead."""
    return lambda: not subscriber.running


def lazy_commits(subscriber: Any, interval: float) -> OffsetCommitter:
    """Make a batch subscriber (NACK_ON_ERROR) commit through an `OffsetCommitter`: a handled
    poll is acknowledged without waiting for the broker. A failed one is still sought back to
    its first record by FastStream, and nothing past it is committed."""
    committer = OffsetCommitter(interval)

    class LazyCommitMessage(KafkaAckableMessage):
        async def ack(self) -> None:
            if not self.committed:
                raw = self.raw_message
                committer.handled(self.consumer, raw if isinstance(raw, tuple) else (raw,))
            await KafkaMessage.ack(self)  # the acknowledgement, without the commit's wait

    subscriber.parser.msg_class = LazyCommitMessage
    _committers[subscriber] = committer
    return committer


_committers: "WeakKeyDictionary[Any, OffsetCommitter]" = WeakKeyDictionary()


def handled_through(subscriber: Any) -> dict[TopicPartition, int]:
    """Per partition, the next offset past what `subscriber` has handled (for consumer lag);
    empty for a subscriber that does not commit through `lazy_commits`."""
    committer = _committers.get(subscriber)
    return committer.handled_through if committer is not None else {}


async def raw_records(message: StreamMessage[Any]) -> list[ConsumerRecord]:
    """The poll's records as aiokafka gave them, for a handler that decodes them itself.

    FastStream would otherwise parse every value as JSON before the handler parses it again, and
    a `KafkaMessage` parameter is resolved by running a sync function in a worker thread.
    """
    raw = message.raw_message
    return list(raw) if isinstance(raw, tuple) else [raw]


@dataclass(frozen=True)
class Polled:
    """One polled record: its topic without the namespace, the raw record, its decoded body."""

    topic: str
    record: Any
    body: Any


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
        poll holds many records (see `long_poll`). `max_records` defaults to the settings'
        `consumer_batch_size`."""
        self.name = name
        self.linger_ms = linger_ms
        self.max_records = max_records
        self.handlers: dict[str, tuple[type[Message], Handler]] = {}
        self._topics = {t.name for t in topics}
        self._stopping: Callable[[], bool] | None = None

    def handles(self, *message_types: type[Message]) -> Callable[[HandlerFn], HandlerFn]:
        """Register `fn(tx, [(message, envelope), ...])` for all of `message_types` (or an
        `each` adapter of a per-message function).

        It gets every fresh message of a poll that it handles at once (a round of them when a
        poll mixes handlers, see `_runs`), grouped by key and in poll order within a key, on
        the poll's transaction: it can read and write them in a few statements for all, not a
        few each. When a poll is retried one message per transaction, it gets lists of one.
        Messages it publishes should take each one's correlation id (`correlated`)."""

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

    def attach(self, broker: KafkaBroker, db: Database, settings: ServiceSettings) -> None:
        """Subscribe this consumer's group to its topics on `broker`.

        Records come in polls of up to `consumer_batch_size`, and a poll is handled in one
        transaction (see `process_poll`). Offsets are committed once the whole poll is handled.
        One transaction per message cost each message a commit and most of a service's CPU.
        """
        max_records = self.max_records or settings.consumer_batch_size
        subscriber = broker.subscriber(
            *[settings.topic(t) for t in self.topics],
            group_id=settings.group(self.name),
            ack_policy=AckPolicy.NACK_ON_ERROR,
            auto_offset_reset="earliest",
            batch=True,
            max_records=max_records,
            batch_timeout_ms=LONG_POLL_MS,
            title=f"{self.name}:{','.join(self.topics)}",
        )
        long_poll(subscriber, max_records, linger_ms=self.linger_ms)
        lazy_commits(subscriber, settings.consumer_commit_interval_ms / 1000)
        self._stopping = stopping(subscriber)

        @subscriber(decoder=raw_records)
        async def consume(records: Any) -> None:
            tracing.serving(settings.service_name, self.name)
            polled = [
                Polled(
                    record.topic.removeprefix(settings.kafka_namespace),
                    record,
                    _decode(record.value),
                )
                for record in records
            ]
            await self.process_poll(polled, db=db, settings=settings)

    async def process_poll(
        self, polled: list["Polled"], *, db: Database, settings: ServiceSettings
    ) -> None:
        """Handle a poll's messages (grouped by key, each key's in poll order) in one
        transaction with their inbox rows.

        A transient failure (the database or the broker away or busy) is waited out: the same
        poll is tried again in place with capped backoff, nothing after it is taken, and past
        `consumer_repoll_after_s` the poll is handed back (`StillUnavailable`: sought back and
        polled again, which keeps the consumer in its group). Any other failure rolls the
        transaction back and the poll is handled again one message per transaction: records of
        one key in order, one after the other; different keys concurrently; a message that fails
        the same way `consumer_max_attempts` times is dead-lettered.
        """
        patience = Patience.for_poll(settings, self._stopping)
        ready: list[tuple[Polled, Envelope, Message, Handler]] = []
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
        by_key: dict[Any, list[tuple[Polled, Envelope, Message, Handler]]] = {}
        for entry in ready:
            record = entry[0].record
            by_key.setdefault(record.key or (record.topic, record.partition), []).append(entry)

        async def in_order(chain: list[tuple[Polled, Envelope, Message, Handler]]) -> None:
            for item, envelope, message, handler in chain:
                with correlated(envelope):
                    await self._handle(db, settings, patience, item, envelope, message, handler)

        await _all_or_none([in_order(chain) for chain in by_key.values()])

    async def _in_one_transaction(
        self, ready: list[tuple["Polled", Envelope, Message, Handler]], *, db: Database
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
            for handler, items in _runs(todo):
                await handler.many(tx, items)

    async def _parse(
        self, item: "Polled", *, db: Database, patience: Patience
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
        item: "Polled",
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
        item: "Polled",
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


def _runs(
    todo: list[tuple[Any, Handler, Message, Envelope]],
) -> list[tuple[Handler, list[tuple[Message, Envelope]]]]:
    """A poll's messages, `(record key, handler, message, envelope)` sorted by key, as calls to
    their handlers: as few as key order allows.

    Each key's messages are cut where the handler changes; the n-th such segment of every key
    belongs to round n, and within a round all segments of one handler make one call (keys in
    order). A key's messages thus stay in poll order, and a batch handler gets at once all it
    can: a whole poll when it handles every type, as the order saga's does."""
    rounds: list[dict[Handler, list[tuple[Message, Envelope]]]] = []
    key: Any = object()
    n = -1
    previous: Handler | None = None
    for record_key, handler, message, envelope in todo:
        if record_key != key:
            key, n, previous = record_key, -1, None
        if handler != previous:
            n, previous = n + 1, handler
            if n == len(rounds):
                rounds.append({})
        rounds[n].setdefault(handler, []).append((message, envelope))
    return [(handler, items) for calls in rounds for handler, items in calls.items()]


@contextmanager
def correlated(envelope: Envelope) -> Iterator[None]:
    """Log lines written and messages queued while handling `envelope` carry its correlation
    id (and, tracing on, run in its CONSUMER span)."""
    token = correlation_id.set(envelope.correlation_id)
    try:
        if tracing.ON:
            with tracing.consuming(envelope):
                yield
        else:
            yield
    finally:
        correlation_id.reset(token)


def _decode(value: bytes | None) -> Any:
    try:
        return orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return {"undecodable": (value or b"").decode(errors="replace")}
