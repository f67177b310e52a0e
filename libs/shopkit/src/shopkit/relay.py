"""The outbox relay: committed outbox rows to Kafka, in id order, one active relay per database.

Why id order is enough, and why a crash between sending and deleting is harmless: shopkit.outbox.
"""

import asyncio
import functools
import logging
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError
from aiokafka.partitioner import DefaultPartitioner, murmur2

from shopkit import tracing
from shopkit.db import Timeouts, asyncpg_dsn
from shopkit.faults import is_transient
from shopkit.outbox import NOTIFY_CHANNEL, RELAY_LOCK_ID
from shopkit.settings import ServiceSettings

log = logging.getLogger("shopkit.relay")


@functools.lru_cache(maxsize=4096)
def _key_hash(key: bytes) -> int:
    return murmur2(key) & 0x7FFFFFFF


def partition_for(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
    """aiokafka's default partitioner (murmur2 of the key, as Java clients do), remembering each
    key's hash: a saga sends several messages with one key (its order id), and aiokafka's
    murmur2 is pure Python."""
    if key is None:
        return int(DefaultPartitioner()(key, all_partitions, available))
    return all_partitions[_key_hash(key) % len(all_partitions)]


class SendFailed(Exception):
    """Kafka did not acknowledge a batch in time, or failed it: the producer is rebuilt and the
    rows, still in the outbox, are sent again."""


class OutboxRelay:
    """Publishes committed outbox rows to Kafka in id order, one active relay per database.

    It survives both of its dependencies. Every statement on its connection is bounded (client
    and server side) and the server drops the connection of a relay that vanished, which frees
    the advisory lock for another replica; a failed connection is replaced a second later. A
    batch Kafka does not acknowledge within `relay_ack_timeout_s`, or fails (an idempotent
    producer that hit OutOfOrderSequenceNumber stays broken for good, aio-libs/aiokafka#1017),
    makes the relay stop that producer and start a new one, retrying until Kafka answers, while
    it keeps the lock; the unacknowledged rows were never deleted, so they go again, in id order.
    """

    def __init__(self, settings: ServiceSettings, *, batch_size: int = 500) -> None:
        self.settings = settings
        self.batch_size = batch_size
        self.timeouts = Timeouts.of(settings)
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None
        self._sent: list[int] = []  # sent, to be deleted with the next SELECT
        self.is_leader = False
        self.producers_started = 0
        self.sent = 0  # rows Kafka acknowledged, for shop_outbox_sent_total

    async def start(self) -> None:
        await self.connect()
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    def new_producer(self) -> AIOKafkaProducer:
        """A Kafka producer as the relay uses it (not started)."""
        return AIOKafkaProducer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=2,
            partitioner=partition_for,
            client_id=f"{self.settings.service_name}-outbox",
            # A batch is failed within about twice this (aiokafka's bound), inside our own wait.
            request_timeout_ms=int(self.settings.relay_ack_timeout_s * 500),
        )

    async def connect(self) -> None:
        """Start a Kafka producer (start() also runs the relay loop)."""
        producer = self.new_producer()
        try:
            async with asyncio.timeout(self.settings.relay_ack_timeout_s):
                await producer.start()
        except BaseException:
            await self._close(producer)
            raise
        self._producer = producer
        self.producers_started += 1

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._producer:
            await self._close(self._producer)
            self._producer = None

    async def _close(self, producer: AIOKafkaProducer) -> None:
        try:
            async with asyncio.timeout(self.settings.relay_ack_timeout_s):
                await producer.stop()
        except Exception as exc:  # a producer that cannot even stop is abandoned, not waited on
            log.warning(
                "outbox producer did not stop cleanly", extra={"fields": {"error": repr(exc)}}
            )

    async def ping(self) -> None:
        """Raise unless Kafka answers a metadata request."""
        producer = self._producer
        if producer is None:
            raise KafkaConnectionError("the outbox relay is reconnecting to Kafka")
        await producer.client.fetch_all_metadata()

    async def _run(self) -> None:
        while True:
            try:
                await self._lead()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.is_leader = False
                if is_transient(exc):
                    log.warning(
                        "outbox relay lost its database connection; reconnecting",
                        extra={"fields": {"error": repr(exc)}},
                    )
                else:
                    log.exception("outbox relay failed; retrying")
                await asyncio.sleep(1.0)

    async def _lead(self) -> None:
        conn = await asyncpg.connect(
            asyncpg_dsn(self.settings.database_url),
            **self.timeouts.connect_args(
                per_statement=True,
                # Deleting sent rows need not wait for the WAL flush: a delete lost in a crash
                # only sends those rows again, as a crash between sending and deleting does.
                synchronous_commit="off",
                # The table is a queue whose statistics say it is nearly empty: the planner
                # would scan every page and sort, where the primary key walks from the oldest
                # row and skips deleted ones. The relay runs only these statements.
                enable_seqscan="off",
                # The server, too, ends any relay statement that runs away.
                statement_timeout=str(int(self.timeouts.command * 1000)),
            ),
        )
        # A connection that dies wakes the loop, whose next statement fails and reconnects.
        conn.add_termination_listener(lambda *_: self._wake.set())
        try:
            # The lock lives as long as this connection: a dead relay frees it for another replica.
            while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", RELAY_LOCK_ID):
                await asyncio.sleep(1.0)
            self.is_leader = True
            await conn.add_listener(NOTIFY_CHANNEL, lambda *_: self._wake.set())
            while True:
                self._wake.clear()
                try:
                    sent = await self.publish_pending(conn)
                except SendFailed as exc:
                    log.warning(
                        "Kafka did not take an outbox batch; starting a new producer",
                        extra={"fields": {"error": repr(exc.__cause__ or exc)}},
                    )
                    await self._rebuild_producer()
                    continue
                if sent < self.batch_size:
                    try:
                        await asyncio.wait_for(self._wake.wait(), timeout=1.0)
                    except TimeoutError:
                        pass
        finally:
            self.is_leader = False
            await self._delete_sent(conn)
            await conn.close(timeout=2)

    async def _rebuild_producer(self) -> None:
        """Stop the producer and start a new one, retrying with capped backoff until Kafka
        answers."""
        old, self._producer = self._producer, None
        if old is not None:
            await self._close(old)
        waited = 0
        while True:
            try:
                await self.connect()
                return
            except Exception as exc:
                delay = min(0.1 * 2**waited, 2.0)
                log.warning(
                    "Kafka unavailable; retrying",
                    extra={"fields": {"error": repr(exc), "wait_s": delay}},
                )
                await asyncio.sleep(delay)
                waited += 1

    async def _delete_sent(self, conn: asyncpg.Connection) -> None:
        """On the way out, delete what was sent (if it cannot, the next leader sends it again)."""
        sent_rows, self._sent = self._sent, []
        if sent_rows:
            try:
                await conn.execute(_DELETE, sent_rows, timeout=2)
            except Exception:
                log.warning(
                    "could not delete %d sent outbox rows; they will be sent again", len(sent_rows)
                )

    async def publish_pending(self, conn: asyncpg.Connection) -> int:
        """Send the next batch of committed rows in id order, then delete them.

        When more rows are already waiting (a full batch, or a NOTIFY came while sending), the
        delete rides in the next batch's SELECT, which comes at once: one statement per batch
        under load instead of two. Either way a crash before the delete only sends the rows
        again. Raises SendFailed when Kafka does not acknowledge them all in time.
        """
        if self._sent:
            rows = await conn.fetch(_DELETE_AND_FETCH[tracing.ON], self.batch_size, self._sent)
            self._sent = []
        else:
            rows = await conn.fetch(_FETCH[tracing.ON], self.batch_size)
        if not rows:
            return 0
        producer = self._producer
        if producer is None:
            raise SendFailed("no producer")
        traced = tracing.ON
        try:
            async with asyncio.timeout(self.settings.relay_ack_timeout_s):
                # send() queues in call order, so per-partition order holds while we await
                # together.
                futures = [
                    await producer.send(
                        self.settings.topic(row["topic"]),
                        value=row["envelope"].encode(),
                        key=row["key"].encode(),
                        headers=record_headers(row, traced),
                    )
                    for row in rows
                ]
                # Every outcome is collected (none left unretrieved); the first failure counts.
                acks = await asyncio.gather(*futures, return_exceptions=True)
        except Exception as exc:  # the timeout, or send() itself refused
            raise SendFailed(repr(exc)) from exc
        for ack in acks:
            if isinstance(ack, BaseException):
                raise SendFailed(repr(ack)) from ack
        self.sent += len(rows)
        sent = [row["id"] for row in rows]
        if len(rows) == self.batch_size or self._wake.is_set():
            self._sent = sent
        else:
            await conn.execute(_DELETE, sent)
        return len(rows)


# Sent rows are deleted, not marked: a delete writes no new row version and no index entries
# (an UPDATE of the whole envelope did), and the table stays as small as what waits to be sent.
# With tracing on, each row's trace context comes along for the record's `traceparent` header.
_ROW = {
    False: "id, topic, key, type, envelope::text AS envelope",
    True: "id, topic, key, type, envelope::text AS envelope, envelope->>'traceparent' AS traceparent",
}
_FETCH = {on: f"SELECT {_ROW[on]} FROM outbox ORDER BY id LIMIT $1" for on in (False, True)}
_DELETE = "DELETE FROM outbox WHERE id = ANY($1::bigint[])"
# Both parts see the same snapshot: the SELECT still sees the rows being deleted, so it leaves
# them out by id.
_DELETE_AND_FETCH = {
    on: "WITH sent AS (DELETE FROM outbox WHERE id = ANY($2::bigint[]))"
    f" SELECT {_ROW[on]} FROM outbox WHERE id <> ALL($2::bigint[]) ORDER BY id LIMIT $1"
    for on in (False, True)
}


def record_headers(row: Any, traced: bool) -> list[tuple[str, bytes]]:
    headers = [("type", row["type"].encode()), ("content-type", b"application/json")]
    traceparent = row.get("traceparent") if traced else None
    if traceparent:
        headers.append(("traceparent", traceparent.encode()))
    return headers
