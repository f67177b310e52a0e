"""A consumer group's subscription to its topics, on aiokafka's public API: the poll loop.

Each poll is handed to one function (`shopkit.messaging.Consumer.process_poll`). When it
returns, the poll's offsets are committed (soon: `OffsetCommitter`); when it raises, every
partition of the poll is sought back to the poll's first record there, so the same records come
again and nothing past them is committed (at-least-once; the inbox skips what was applied).
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from itertools import chain

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import ConsumerStoppedError, IllegalStateError

log = logging.getLogger("shopkit.subscription")

# How long one poll may wait for a record. getmany returns as soon as any record has been
# fetched, so this bounds only the idle wait, not a message's latency.
LONG_POLL_MS = 1000
# How long stopping waits for the poll in hand before cancelling it (its transaction then
# rolls back and the records come again to whoever has the partition next).
STOP_GRACE_S = 15.0

HandlePoll = Callable[[list[ConsumerRecord]], Awaitable[None]]


class OffsetCommitter:
    """Commits what a consumer has handled at most every `interval` seconds, off its loop.

    A handled poll only records its offsets, and a task commits them together at most
    `interval` seconds later: the loop never waits for the broker's answer to a commit.
    What is handled is still committed only after its transaction (the offsets come from the
    poll's own records, never from the consumer's position, which may already be past a poll
    being handled); a crash or a rebalance can only deliver again what was handled in the last
    `interval`, which the inbox skips.
    """

    def __init__(self, consumer: AIOKafkaConsumer, interval: float) -> None:
        self.consumer = consumer
        self.interval = interval
        self._pending: dict[TopicPartition, int] = {}
        # The next offset past what was handled, per partition: lag is measured from here.
        self.handled_through: dict[TopicPartition, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._last = 0.0

    def handled(self, records: Iterable[ConsumerRecord]) -> None:
        """The poll of `records` is handled: commit past them (soon)."""
        for record in records:
            partition = TopicPartition(record.topic, record.partition)
            if record.offset >= self._pending.get(partition, -1):
                self._pending[partition] = self.handled_through[partition] = record.offset + 1
        if self._pending and (self._task is None or self._task.done()):
            delay = max(0.0, self._last + self.interval - time.monotonic())
            self._task = asyncio.create_task(self._commit_after(delay), name="offset-commit")

    async def _commit_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        await self.flush()

    async def flush(self) -> None:
        """Commit what is pending now."""
        pending, self._pending = self._pending, {}
        # A partition revoked meanwhile is its new owner's to commit (the inbox skips repeats).
        assigned = self.consumer.assignment()
        pending = {tp: offset for tp, offset in pending.items() if tp in assigned}
        if not pending:
            return
        self._last = time.monotonic()
        try:
            await self.consumer.commit(pending)
        except Exception as exc:
            log.warning(
                "offset commit failed; what was handled since the last one will be delivered"
                " again (and skipped by the inbox)",
                extra={"fields": {"error": repr(exc)}},
            )


class _CommitBeforeRevoking(ConsumerRebalanceListener):
    """A rebalance commits what was handled before the partitions go to another member."""

    def __init__(self, offsets: OffsetCommitter) -> None:
        self.offsets = offsets

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.offsets.flush()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        pass


class Subscription:
    """A member of consumer group `group` (its name without the namespace) on `topics`,
    polling and handing each poll to `handle`.

    A poll that was not full is followed by the next one `linger_ms` later (0: at once): what
    arrives meanwhile is fetched and handled together, one transaction and one offset commit
    for many records. That is for a consumer whose latency matters little (a projection); a
    full poll is followed at once, so a backlog still drains at full speed. An empty poll is
    followed at once too: getmany itself waits up to `LONG_POLL_MS` for a record.
    """

    def __init__(
        self,
        group: str,
        consumer: AIOKafkaConsumer,
        topics: list[str],
        handle: HandlePoll,
        *,
        max_records: int,
        linger_ms: int = 0,
        commit_interval: float = 0.2,
    ) -> None:
        self.group = group
        self.consumer = consumer
        self.topics = topics
        self.handle = handle
        self.max_records = max_records
        self.linger_ms = linger_ms
        self.offsets = OffsetCommitter(consumer, commit_interval)
        self.stopping = False
        self._next_poll = 0.0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.consumer.subscribe(self.topics, listener=_CommitBeforeRevoking(self.offsets))
        await self.consumer.start()
        self._task = asyncio.create_task(self._run(), name=f"poll-{','.join(self.topics)}")

    async def stop(self) -> None:
        """Let the poll in hand finish (a poll waiting out an outage hands itself back: see
        `stopping`), commit what was handled, leave the group."""
        self.stopping = True
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), STOP_GRACE_S)
            except TimeoutError:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
            except Exception:  # the loop's own failure was logged where it happened
                pass
        await self.offsets.flush()
        await self.consumer.stop()

    async def poll(self) -> list[ConsumerRecord]:
        """The next poll's records (none after an idle `LONG_POLL_MS`)."""
        wait = self._next_poll - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        polled = await self.consumer.getmany(timeout_ms=LONG_POLL_MS, max_records=self.max_records)
        records = list(chain.from_iterable(polled.values()))
        lingering = self.linger_ms and 0 < len(records) < self.max_records
        self._next_poll = time.monotonic() + self.linger_ms / 1000 if lingering else 0.0
        return records

    async def _run(self) -> None:
        while not self.stopping:
            try:
                records = await self.poll()
            except ConsumerStoppedError:
                return
            except Exception as exc:  # the broker away, say: the loop must outlive it
                log.warning("poll failed; polling again", extra={"fields": {"error": repr(exc)}})
                await asyncio.sleep(1.0)
                continue
            if not records:
                continue
            try:
                await self.handle(records)
            except Exception as exc:
                log.warning(
                    "poll not handled; it will be polled again",
                    extra={"fields": {"topics": self.topics, "error": repr(exc)}},
                )
                self.seek_back(records)
                continue
            self.offsets.handled(records)

    def seek_back(self, records: list[ConsumerRecord]) -> None:
        """Rewind each partition of a poll to its first record there."""
        earliest: dict[TopicPartition, int] = {}
        for record in records:
            partition = TopicPartition(record.topic, record.partition)
            earliest[partition] = min(record.offset, earliest.get(partition, record.offset))
        for partition, offset in earliest.items():
            try:
                self.consumer.seek(partition, offset)
            except IllegalStateError:
                pass  # revoked meanwhile: its new owner starts from the committed offset
