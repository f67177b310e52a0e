"""Rebuild the projection from the Kafka topics: `python -m analytics.rebuild [--truncate]`.

Reads order.events and catalog.events from the beginning up to their end offsets at start,
with no consumer group (nothing is committed, the live group is untouched), and hands each
fetch to the live consumer's own poll handling (inbox, projection, dead letters). Run it
against a fresh, migrated database, or pass --truncate to empty this service's tables first
(stop the service while it runs). Afterwards the live consumer may redeliver some of the same
events: the inbox skips them.
"""

import argparse
import asyncio
import sys
from dataclasses import asdict, dataclass

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from analytics.handlers import CONSUMER, projection_consumer
from analytics.settings import Settings
from shopkit.db import Database
from shopkit.messaging import Delivery

PROJECTION_TABLES = "products, sale_orders, product_daily_sales, category_daily_sales, daily_sales"


@dataclass(frozen=True)
class Rebuilt:
    records: int
    applied: int
    orders: int
    products: int


class NotEmpty(Exception):
    """The target database already holds a projection."""


async def rebuild(settings: Settings, *, truncate: bool = False) -> Rebuilt:
    """Project every event on the topics into the configured database; what was done."""
    db = Database(settings.database_url, pool_size=2)
    try:
        await _prepare(db, truncate=truncate)
        records = await _replay(db, settings)
        async with db.autocommit() as conn:
            applied = await conn.fetchval(
                "SELECT count(*) FROM inbox WHERE consumer = $1 AND outcome = 'processed'",
                CONSUMER,
            )
            orders = await conn.fetchval("SELECT count(*) FROM sale_orders")
            products = await conn.fetchval("SELECT count(*) FROM products")
        return Rebuilt(records=records, applied=applied, orders=orders, products=products)
    finally:
        await db.dispose()


async def _prepare(db: Database, *, truncate: bool) -> None:
    async with db.transaction() as tx:
        if truncate:
            await tx.execute(f"TRUNCATE {PROJECTION_TABLES}")
            # What the projection applied is forgotten with it, so the replay applies it again.
            await tx.execute("DELETE FROM inbox WHERE consumer = $1", CONSUMER)
            return
        seen = await tx.fetchval("SELECT count(*) FROM inbox WHERE consumer = $1", CONSUMER)
        if seen:
            raise NotEmpty(f"the database already projected {seen} events; use --truncate")


async def _replay(db: Database, settings: Settings) -> int:
    """How many records were read."""
    consumer = projection_consumer(settings)
    kafka = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id=f"{settings.service_name}-rebuild",
    )
    await kafka.start()
    try:
        partitions = await _partitions(settings, [settings.topic(t) for t in consumer.topics])
        kafka.assign(partitions)
        await kafka.seek_to_beginning(*partitions)
        end = await kafka.end_offsets(partitions)
        remaining = {tp for tp in partitions if await kafka.position(tp) < end[tp]}
        records = 0
        while remaining:
            fetched = await kafka.getmany(
                *remaining, timeout_ms=1000, max_records=settings.batch_max_records
            )
            batch = [
                Delivery.of(r, namespace=settings.kafka_namespace)
                for tp, found in fetched.items()
                for r in found
                if r.offset < end[tp]
            ]
            records += len(batch)
            await consumer.process_poll(batch, db=db, settings=settings)
            remaining = {tp for tp in remaining if await kafka.position(tp) < end[tp]}
        return records
    finally:
        await kafka.stop()


async def _partitions(settings: Settings, topics: list[str]) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    return sorted(
        TopicPartition(topic["topic"], p["partition"])
        for topic in described
        for p in topic["partitions"]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analytics.rebuild", description=__doc__)
    parser.add_argument("--truncate", action="store_true", help="empty the projection first")
    args = parser.parse_args(argv)
    try:
        done = asyncio.run(rebuild(Settings(), truncate=args.truncate))
    except NotEmpty as exc:
        print(f"[analytics-rebuild] refused: {exc}", file=sys.stderr)
        return 2
    print(orjson.dumps({"rebuilt": asdict(done)}).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
