"""The outbox and inbox against real PostgreSQL and Kafka: nothing lost, nothing doubled."""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from contracts import Envelope
from contracts.wallet import BalanceCharged
from shopdev.testing import Infra, KafkaProbe, kit_database, poll
from shopkit.db import Database, Transaction, asyncpg_dsn
from shopkit.messaging import Consumer, each
from shopkit.outbox import publish
from shopkit.relay import OutboxRelay
from shopkit.settings import ServiceSettings


class RelayCrash(Exception):
    pass


class CrashesBeforeDeleting:
    """A relay connection that reads fine but dies when it would delete the rows it sent."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def fetch(self, *args: Any) -> Any:
        return await self.conn.fetch(*args)

    async def execute(self, *args: Any) -> Any:
        raise RelayCrash("killed between publishing and deleting")


@pytest.fixture(scope="module")
async def db(infra: Infra) -> AsyncIterator[Database]:
    async with kit_database(
        infra, "kit", "CREATE TABLE effects (message_id uuid, user_id text)"
    ) as database:
        yield database


@pytest.fixture(scope="module")
def settings(db: Database, infra: Infra, kafka_namespace: str) -> ServiceSettings:
    return ServiceSettings(
        service_name="kit-test",
        database_url=db.url,
        kafka_bootstrap=infra.kafka_bootstrap,
        kafka_namespace=kafka_namespace,
        log_json=False,
    )


def charged(user_id: str) -> BalanceCharged:
    return BalanceCharged(user_id=user_id, amount=1, balance=1, transaction_id=str(uuid.uuid4()))


@each
async def record_effect(tx: Transaction, message: BalanceCharged, env: Envelope) -> None:
    """The handler most tests use: one effects row per applied message."""
    await tx.execute(
        "INSERT INTO effects (message_id, user_id) VALUES ($1, $2)", env.message_id, message.user_id
    )


async def effects_of(db: Database, user_id: str) -> list[str]:
    """The ids of the messages applied for `user_id`."""
    async with db.autocommit() as conn:
        rows = await conn.fetch("SELECT message_id::text FROM effects WHERE user_id = $1", user_id)
        return [r[0] for r in rows]


@asynccontextmanager
async def consuming(
    consumer: Consumer, db: Database, settings: ServiceSettings
) -> AsyncIterator[None]:
    """`consumer` subscribed and running for the block."""
    subscription = consumer.subscribe(db, settings)
    await subscription.start()
    try:
        yield
    finally:
        await subscription.stop()


async def publish_committed(db: Database, message: BalanceCharged) -> Envelope:
    async with db.transaction() as tx:
        (envelope,) = await publish(tx, message)
        return envelope


async def ids_on_topic(kafka: KafkaProbe, user_id: str) -> list[str]:
    return [e["message_id"] for e in await kafka.read_all("wallet.events") if e["key"] == user_id]


async def waiting(db: Database) -> int:
    """Rows in the outbox: the relay deletes each one Kafka has."""
    async with db.autocommit() as conn:
        return int(await conn.fetchval("SELECT count(*) FROM outbox"))


async def test_a_message_survives_a_relay_dying_between_publish_and_delete(
    db: Database, settings: ServiceSettings, kafka: KafkaProbe
) -> None:
    user_id = str(uuid.uuid4())
    envelope = await publish_committed(db, charged(user_id))
    crashing = OutboxRelay(settings)
    await crashing.connect()
    conn = await asyncpg.connect(asyncpg_dsn(db.url))
    try:
        with pytest.raises(RelayCrash):
            await crashing.publish_pending(CrashesBeforeDeleting(conn))  # type: ignore[arg-type]
    finally:
        await conn.close()
        await crashing.stop()
    sent_once = await poll(
        lambda: ids_on_topic(kafka, user_id),
        until=bool,
        message="the crashed relay's send on the topic",
    )
    assert sent_once == [str(envelope.message_id)]
    assert await waiting(db) >= 1

    relay = OutboxRelay(settings)
    await relay.start()
    try:
        await poll(lambda: waiting(db), until=lambda n: n == 0, message="outbox drained")
    finally:
        await relay.stop()

    # Delivered at least once: the restarted relay sent it again, with the same id.
    sent = await poll(
        lambda: ids_on_topic(kafka, user_id),
        until=lambda ids: len(ids) >= 2,
        message="the restarted relay's send on the topic",
    )
    assert sent == [str(envelope.message_id)] * 2


async def deleted(db: Database, envelopes: list[Envelope]) -> list[bool]:
    """For each envelope, in order: is its outbox row gone (deleted as sent)?"""
    conn = await asyncpg.connect(asyncpg_dsn(db.url))
    try:
        rows = await conn.fetch(
            "SELECT message_id FROM outbox WHERE message_id = ANY($1::uuid[])",
            [e.message_id for e in envelopes],
        )
    finally:
        await conn.close()
    left = {row["message_id"] for row in rows}
    return [e.message_id not in left for e in envelopes]


async def test_under_load_a_batch_is_deleted_with_the_next_fetch_and_sent_once(
    db: Database, settings: ServiceSettings, kafka: KafkaProbe
) -> None:
    user_id = str(uuid.uuid4())
    first = await publish_committed(db, charged(user_id))
    second = await publish_committed(db, charged(user_id))
    relay = OutboxRelay(settings, batch_size=1)
    await relay.connect()
    conn = await asyncpg.connect(asyncpg_dsn(db.url))
    try:
        # Rows left by other tests go first; send until ours is out, each batch a full one.
        while await relay.publish_pending(conn) and not await ids_on_topic(kafka, user_id):
            pass
        assert await deleted(db, [first, second]) == [False, False]  # its delete is deferred
        await relay.publish_pending(conn)  # deletes the first, sends the second
        assert await deleted(db, [first, second]) == [True, False]
        while await relay.publish_pending(conn):
            pass
        assert await deleted(db, [first, second]) == [True, True]
    finally:
        await conn.close()
        await relay.stop()
    sent = await poll(lambda: ids_on_topic(kafka, user_id), until=lambda ids: len(ids) >= 2)
    assert sent == [str(first.message_id), str(second.message_id)]


async def record_effects(tx: Transaction, items: list[tuple[BalanceCharged, Envelope]]) -> None:
    """`record_effect` as a batch handler: all of a poll's messages in one statement."""
    await tx.executemany(
        "INSERT INTO effects (message_id, user_id) VALUES ($1, $2)",
        [(env.message_id, message.user_id) for message, env in items],
    )


@pytest.mark.parametrize("kind", ["each", "batch"])
async def test_a_duplicate_delivery_is_applied_once(
    db: Database, settings: ServiceSettings, kafka: KafkaProbe, kind: str
) -> None:
    user_id = str(uuid.uuid4())
    first = charged(user_id)
    envelope = await kafka.publish(first)
    await kafka.publish(first, envelope=envelope)  # the same message, delivered twice
    marker = await kafka.publish(charged(user_id))  # same key: same partition, after both

    consumer = Consumer(f"kit-test-effects-{kind}")
    consumer.handles(BalanceCharged)(record_effects if kind == "batch" else record_effect)

    async with consuming(consumer, db, settings):
        # The marker comes after both copies in its partition, so once it is applied both
        # copies have been consumed.
        applied = await poll(
            lambda: effects_of(db, user_id),
            until=lambda ids: str(marker.message_id) in ids,
            message="marker applied",
        )

    assert sorted(applied) == sorted([str(envelope.message_id), str(marker.message_id)])


async def test_a_poll_is_handled_in_one_transaction(
    db: Database, settings: ServiceSettings, kafka: KafkaProbe
) -> None:
    """Messages waiting together are applied together: their inbox rows share a transaction
    (PostgreSQL's now() is the transaction's start), and each is applied exactly once."""
    user_id = str(uuid.uuid4())
    sent = await kafka.publish_many([charged(user_id) for _ in range(30)])
    consumer = Consumer("kit-test-batch")
    consumer.handles(BalanceCharged)(record_effect)

    async with consuming(consumer, db, settings):
        applied = await poll(
            lambda: effects_of(db, user_id), until=lambda ids: len(ids) >= len(sent)
        )
    assert sorted(applied) == sorted(str(e.message_id) for e in sent)
    async with db.autocommit() as conn:
        transactions = await conn.fetchval(
            "SELECT count(DISTINCT processed_at) FROM inbox"
            " WHERE consumer = 'kit-test-batch' AND message_id = ANY($1::uuid[])",
            [e.message_id for e in sent],
        )
    assert transactions <= len(sent) // 3


async def test_a_batch_handler_gets_a_polls_messages_in_one_call(
    db: Database, settings: ServiceSettings, kafka: KafkaProbe
) -> None:
    user_id = str(uuid.uuid4())
    sent = await kafka.publish_many([charged(user_id) for _ in range(30)])
    calls: list[int] = []
    consumer = Consumer("kit-test-batch-handler")

    @consumer.handles(BalanceCharged)
    async def counted(tx: Transaction, items: list[tuple[Any, Envelope]]) -> None:
        # The topic holds other tests' messages too: count this test's.
        calls.append(sum(message.user_id == user_id for message, _ in items))
        await record_effects(tx, items)

    async with consuming(consumer, db, settings):
        applied = await poll(
            lambda: effects_of(db, user_id), until=lambda ids: len(ids) >= len(sent)
        )
    assert sorted(applied) == sorted(str(e.message_id) for e in sent)
    calls = [n for n in calls if n]
    assert sum(calls) == len(sent)
    assert len(calls) <= len(sent) // 3, calls


async def test_a_rolled_back_transaction_publishes_nothing(
    db: Database, settings: ServiceSettings, kafka: KafkaProbe
) -> None:
    user_id = str(uuid.uuid4())
    with pytest.raises(RuntimeError):
        async with db.transaction() as tx:
            await publish(tx, charged(user_id))
            raise RuntimeError("the state change failed")
    committed = await publish_committed(db, charged(user_id))
    assert await queued_for(db, user_id) == [committed.message_id]

    relay = OutboxRelay(settings)
    await relay.start()
    try:
        await kafka.wait_for(
            "wallet.events", lambda e: e["message_id"] == str(committed.message_id)
        )
        await poll(lambda: queued_for(db, user_id), until=lambda ids: not ids)
    finally:
        await relay.stop()

    assert await ids_on_topic(kafka, user_id) == [str(committed.message_id)]


async def queued_for(db: Database, user_id: str) -> list[uuid.UUID]:
    """The ids of the outbox rows, still to send, about `user_id`."""
    async with db.autocommit() as conn:
        rows = await conn.fetch("SELECT message_id FROM outbox WHERE key = $1", user_id)
        return [r[0] for r in rows]


@pytest.mark.parametrize("kind", ["each", "batch"])
async def test_a_poison_message_is_dead_lettered_and_the_partition_moves_on(
    db: Database, settings: ServiceSettings, kafka: KafkaProbe, kind: str
) -> None:
    """A batch handler's poison fails its whole poll; handled again one message per
    transaction, the others are applied and only the poison is dead-lettered."""
    user_id = str(uuid.uuid4())
    poison = await kafka.publish(charged(user_id))
    after = await kafka.publish(charged(user_id))
    consumer = Consumer(f"kit-test-poison-{kind}")

    if kind == "batch":

        @consumer.handles(BalanceCharged)
        async def fragile_batch(tx: Transaction, items: list[tuple[Any, Envelope]]) -> None:
            if any(env.message_id == poison.message_id for _, env in items):
                raise ValueError("cannot handle this one")
            await record_effects(tx, items)

    else:

        @consumer.handles(BalanceCharged)
        @each
        async def fragile(tx: Transaction, message: BalanceCharged, env: Envelope) -> None:
            if env.message_id == poison.message_id:
                raise ValueError("cannot handle this one")
            await record_effect(tx, message, env)

    fast = settings.model_copy(update={"consumer_max_attempts": 2})
    subscription = consumer.subscribe(db, fast)
    relay = OutboxRelay(fast)
    await subscription.start()
    await relay.start()
    try:
        dead = await kafka.wait_for(
            "wallet.events.dlt", lambda e: e["causation_id"] == str(poison.message_id)
        )

        async def applied() -> int:
            async with db.autocommit() as conn:
                query = "SELECT count(*) FROM effects WHERE message_id = $1"
                return int(await conn.fetchval(query, after.message_id))

        await poll(applied, until=lambda n: n == 1, message="message after the poison applied")
    finally:
        await relay.stop()
        await subscription.stop()
    assert dead[0]["payload"]["consumer"] == f"kit-test-poison-{kind}"
    assert "cannot handle this one" in dead[0]["payload"]["error"]


class LosesItsDatabaseOnce(Consumer):
    """A consumer whose first poll fails outside any handler (the database went away)."""

    failed = 0

    async def process_poll(self, polled: list[Any], **context: Any) -> None:
        if not self.failed:
            self.failed += 1
            raise ConnectionError("the database went away")
        await super().process_poll(polled, **context)


async def test_a_poll_that_fails_is_delivered_again_and_its_offsets_committed_after(
    db: Database, settings: ServiceSettings, kafka: KafkaProbe
) -> None:
    """A poll that fails outside its handlers is rewound (NACK_ON_ERROR) and delivered again,
    and only then are its offsets committed."""
    user_id = str(uuid.uuid4())
    sent = await kafka.publish_many([charged(user_id) for _ in range(5)])
    consumer = LosesItsDatabaseOnce("kit-test-rewind")
    consumer.handles(BalanceCharged)(record_effect)

    async with consuming(consumer, db, settings):
        applied = await poll(
            lambda: effects_of(db, user_id), until=lambda ids: len(ids) >= len(sent)
        )

        topic, group = settings.topic("wallet.events"), settings.group("kit-test-rewind")
        probe = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None)
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        await probe.start()
        await admin.start()
        (described,) = await admin.describe_topics([topic])
        partitions = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
        assert partitions
        probe.assign(partitions)
        ends = await probe.end_offsets(partitions)

        async def uncommitted() -> int:
            committed = await admin.list_consumer_group_offsets(group)
            return sum(
                end - (committed[tp].offset if tp in committed else 0) for tp, end in ends.items()
            )

        try:
            await poll(uncommitted, until=lambda n: n == 0, message="offsets committed")
        finally:
            await admin.close()
            await probe.stop()
    assert consumer.failed == 1
    assert sorted(applied) == sorted(str(e.message_id) for e in sent)  # each exactly once
