"""Tables that only grow are pruned by age, and what must stay stays; topics keep their
records for a known time and dead-letter topics forever."""

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from shopdev.testing import (
    Infra,
    kit_database,
    new_namespace,
    poll,
    serve,
    session_keys,
)
from shopkit.app import create_app
from shopkit.clock import FrozenClock
from shopkit.db import Database
from shopkit.kafka_admin import RETENTION_MS, SEGMENT_MS, ensure_topics
from shopkit.retention import prune
from shopkit.settings import ServiceSettings

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def db(infra: Infra) -> AsyncIterator[Database]:
    async with kit_database(infra, "retention") as database:
        yield database


def settings_for(db: Database, infra: Infra, **extra: object) -> ServiceSettings:
    return ServiceSettings(
        service_name="kit-retention",
        database_url=db.url,
        kafka_bootstrap=infra.kafka_bootstrap,
        log_json=False,
        jwt_public_keys=session_keys().public_keys,
        **extra,  # type: ignore[arg-type]
    )


async def seed(db: Database) -> dict[str, uuid.UUID]:
    """Inbox rows and idempotency keys of every kind, old and recent; their message ids."""
    ids = {
        name: uuid.uuid4()
        for name in (
            "old",
            "recent",
            "old_dead",
            "old_redriving",
            "old_redriven_letter",
            "old_orphan_dead",
        )
    }
    old, recent = NOW - timedelta(days=15), NOW - timedelta(days=13)
    inbox = [
        (ids["old"], "processed", old),
        (ids["recent"], "processed", recent),
        (ids["old_dead"], "dead-lettered", old),
        (ids["old_redriving"], "redriving", old),
        (ids["old_redriven_letter"], "redriven", old),
        (ids["old_orphan_dead"], "dead-lettered", old),
    ]
    letters = [
        (ids["old_dead"], "DEAD"),
        (ids["old_redriving"], "REDRIVING"),
        (ids["old_redriven_letter"], "REDRIVEN"),
    ]
    async with db.transaction() as conn:
        await conn.executemany(
            "INSERT INTO inbox (consumer, message_id, type, outcome, processed_at)"
            " VALUES ('c', $1, 'T', $2, $3)",
            inbox,
        )
        # Many more old ones, so that pruning takes several batches.
        await conn.execute(
            "INSERT INTO inbox (consumer, message_id, type, outcome, processed_at)"
            " SELECT 'bulk', gen_random_uuid(), 'T', 'processed', $1 FROM generate_series(1, 25)",
            old,
        )
        await conn.executemany(
            "INSERT INTO dead_letters (id, consumer, topic, message_id, payload, error, attempts,"
            " status) VALUES (gen_random_uuid(), 'c', 't', $1, '{}'::jsonb, 'e', 1, $2)",
            letters,
        )
        await conn.executemany(
            "INSERT INTO idempotency_keys (scope, key, request_hash, status, claimed_at)"
            " VALUES ('s', $1, 'h', 'DONE', $2)",
            [("old-key", NOW - timedelta(hours=25)), ("recent-key", NOW - timedelta(hours=23))],
        )
    return ids


async def remaining(db: Database) -> tuple[set[uuid.UUID], set[str], int]:
    async with db.autocommit() as conn:
        inbox = {r[0] for r in await conn.fetch("SELECT message_id FROM inbox WHERE consumer='c'")}
        keys = {r[0] for r in await conn.fetch("SELECT key FROM idempotency_keys")}
        bulk = await conn.fetchval("SELECT count(*) FROM inbox WHERE consumer = 'bulk'")
    return inbox, keys, int(bulk)


async def test_pruning_deletes_old_rows_and_keeps_recent_and_dead_lettered_ones(
    db: Database, infra: Infra
) -> None:
    ids = await seed(db)
    settings = settings_for(db, infra, retention_batch_size=4)

    deleted = await prune(db, now=NOW, settings=settings)

    inbox, keys, bulk = await remaining(db)
    assert inbox == {ids["recent"], ids["old_dead"], ids["old_redriving"]}
    assert keys == {"recent-key"}
    assert bulk == 0
    assert deleted == {"inbox": 25 + 3, "idempotency_keys": 1}


async def test_every_service_prunes_in_the_background_by_its_clock(
    db: Database, infra: Infra
) -> None:
    ids = await seed(db)
    settings = settings_for(db, infra, retention_interval_seconds=0.05)
    app = create_app(settings, title="kit retention", routers=[], clock=FrozenClock(NOW))

    async with serve(app):
        inbox, keys, _ = await poll(
            lambda: remaining(db), until=lambda left: left[2] == 0 and len(left[1]) == 1
        )
    assert inbox == {ids["recent"], ids["old_dead"], ids["old_redriving"]}
    assert keys == {"recent-key"}


async def topic_config(bootstrap: str, topic: str) -> dict[str, str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (response,) = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic)]
        )
    finally:
        await admin.close()
    (resource,) = response.resources
    return {entry[0]: entry[1] for entry in resource[4]}


async def test_topics_keep_records_a_known_time_and_dead_letter_topics_forever(
    infra: Infra,
) -> None:
    namespace = await new_namespace(infra)
    for _ in range(2):  # created, then found and set again
        events = await topic_config(infra.kafka_bootstrap, f"{namespace}order.events")
        dead = await topic_config(infra.kafka_bootstrap, f"{namespace}order.events.dlt")
        assert events["retention.ms"] == str(RETENTION_MS)
        assert events["segment.ms"] == str(SEGMENT_MS)
        assert dead["retention.ms"] == "-1" and dead["retention.bytes"] == "-1"
        await ensure_topics(infra.kafka_bootstrap, namespace)
