"""The poll loop against real Kafka: a second member of a group takes over partitions, each
message is still applied exactly once, and what was handled is committed."""

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from contracts import Envelope
from contracts.wallet import BalanceCharged
from shopdev.testing import Infra, KafkaProbe, kit_database, poll, serve, session_keys
from shopkit.app import create_app
from shopkit.db import Database, Transaction
from shopkit.messaging import Consumer, each
from shopkit.settings import ServiceSettings

GROUP = "kit-test-rebalance"


@pytest.fixture(scope="module")
async def db(infra: Infra) -> AsyncIterator[Database]:
    async with kit_database(
        infra, "kitsub", "CREATE TABLE effects (message_id uuid, user_id text)"
    ) as database:
        yield database


@pytest.fixture(scope="module")
def settings(db: Database, infra: Infra, kafka_namespace: str) -> ServiceSettings:
    return ServiceSettings(
        service_name="kit-subscription",
        database_url=db.url,
        kafka_bootstrap=infra.kafka_bootstrap,
        kafka_namespace=kafka_namespace,
        consumer_batch_size=5,
        log_json=False,
    )


async def applied(db: Database, users: list[str]) -> list[str]:
    async with db.autocommit() as conn:
        rows = await conn.fetch(
            "SELECT message_id::text FROM effects WHERE user_id = ANY($1)", users
        )
    return [row[0] for row in rows]


def charges(users: list[str], rounds: int) -> list[BalanceCharged]:
    return [
        BalanceCharged(user_id=u, amount=1, balance=n, transaction_id=str(uuid.uuid4()))
        for n in range(rounds)
        for u in users
    ]


async def test_a_second_member_takes_partitions_and_every_message_is_applied_once(
    db: Database, settings: ServiceSettings, kafka: KafkaProbe
) -> None:
    consumer = Consumer(GROUP)

    @consumer.handles(BalanceCharged)
    @each
    async def record(tx: Transaction, message: BalanceCharged, env: Envelope) -> None:
        await tx.execute(
            "INSERT INTO effects (message_id, user_id) VALUES ($1, $2)",
            env.message_id,
            message.user_id,
        )

    users = [str(uuid.uuid4()) for _ in range(12)]  # keys enough to reach every partition
    sent = await kafka.publish_many(charges(users, 5))
    first = consumer.subscribe(db, settings)
    second = consumer.subscribe(db, settings)
    await first.start()
    try:
        await poll(lambda: applied(db, users), until=bool, message="the first member applies")
        await second.start()
        try:

            async def split() -> bool:
                mine, theirs = first.consumer.assignment(), second.consumer.assignment()
                return bool(mine) and bool(theirs) and not mine & theirs

            await poll(split, timeout=30, message="the partitions split between the members")
            sent += await kafka.publish_many(charges(users, 5))
            ids = await poll(
                lambda: applied(db, users),
                until=lambda ids: len(ids) >= len(sent),
                timeout=30,
                message="every message applied",
            )
        finally:
            await second.stop()
    finally:
        await first.stop()
    assert sorted(ids) == sorted(str(e.message_id) for e in sent)  # each exactly once

    topic = settings.topic("wallet.events")
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(settings.group(GROUP))
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    # Committed up to the end of every partition: handled polls are committed, the last ones
    # by stop() and on revocation.
    ends = await kafka_ends(
        settings, [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
    )
    assert {tp: committed[tp].offset for tp in ends if tp in committed} == {
        tp: end for tp, end in ends.items() if end
    }


async def kafka_ends(
    settings: ServiceSettings, partitions: list[TopicPartition]
) -> dict[TopicPartition, int]:
    probe = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await probe.start()
    try:
        return dict(await probe.end_offsets(partitions))
    finally:
        await probe.stop()


async def test_metrics_show_each_groups_lag_and_the_pool(
    db: Database, settings: ServiceSettings, kafka: KafkaProbe
) -> None:
    consumer = Consumer("kit-test-lag")
    seen: list[str] = []

    @consumer.handles(BalanceCharged)
    async def note(tx: Transaction, batch: list[tuple[BalanceCharged, Envelope]]) -> None:
        seen.extend(str(env.message_id) for _, env in batch)

    (marker,) = await kafka.publish_many(charges([str(uuid.uuid4())], 1))
    keys = session_keys()
    app = create_app(
        settings.model_copy(update={"jwt_public_keys": keys.public_keys}),
        title="kit lag",
        routers=[],
        consumers=[consumer],
    )
    async with serve(app) as client:
        await poll(lambda: asyncio.sleep(0, str(marker.message_id) in seen), message="handled")

        async def lag_lines() -> list[str]:
            text = (await client.get("/metrics")).text
            return [line for line in text.splitlines() if line.startswith("shop_consumer_lag{")]

        lines = await poll(lag_lines, message="lag gauges")
        text = (await client.get("/metrics")).text
    assert all('group="kit-test-lag"' in line for line in lines)
    assert all('topic="wallet.events"' in line for line in lines)
    assert 'shop_db_pool_size{pool="asyncpg"} 20.0' in text
