"""The projection consumer's rules, on the real database: dedup inside a poll, poison isolation."""

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import orjson
import pytest
from aiokafka import ConsumerRecord

from analytics.handlers import CONSUMER, projection_consumer
from analytics.settings import Settings
from contracts import Envelope
from contracts.order import OrderFailed, OrderPaid, SoldLine
from shopdev.testing import Infra, create_database, database_refusing, unique_name
from shopkit.db import Database, asyncpg_dsn
from shopkit.dead_letters import redrive
from shopkit.messaging import Delivery
from shopkit.outbox import envelope

SERVICE_DIR = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
async def scratch(infra: Infra, settings: Settings) -> Settings:
    """Settings on a database of its own: these events never travel through the topics."""
    url = await create_database(infra, SERVICE_DIR, unique_name("analytics"))
    return settings.model_copy(update={"database_url": url})


def paid(product_id: str, quantity: int) -> OrderPaid:
    line = SoldLine(
        product_id=product_id, name="n", category="c", quantity=quantity, unit_price=100
    )
    return OrderPaid(
        order_id=f"order-{product_id}-{quantity}",
        user_id="u",
        lines=(line,),
        subtotal=quantity * 100,
        discount=0,
        total=quantity * 100,
        paid_at=datetime(2045, 5, 5, 3, tzinfo=UTC),
    )


def record(sent: Envelope, *, partition: int = 0, offset: int = 0, body: bytes = b"") -> Delivery:
    """`sent` as the consumer gets it from order.events (or `body`, when given, as its value)."""
    value = body or orjson.dumps(sent.model_dump(mode="json"))
    key = sent.key.encode()
    return Delivery.of(
        ConsumerRecord(
            "order.events", partition, offset, 0, 0, key, value, None, len(key), len(value), ()
        )
    )


async def process(settings: Settings, *deliveries: Delivery) -> None:
    """Hand one poll of `deliveries` to the projection consumer, on its own database pool."""
    db = Database(settings.database_url, pool_size=1)
    try:
        await projection_consumer(settings).process_poll(list(deliveries), db=db, settings=settings)
    finally:
        await db.dispose()


async def recorded(database_url: str) -> set[object]:
    """The message ids the projection's inbox holds."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        rows = await conn.fetch("SELECT message_id FROM inbox WHERE consumer = $1", CONSUMER)
    finally:
        await conn.close()
    return {row[0] for row in rows}


async def sold(database_url: str, product_id: str) -> int | None:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        return await conn.fetchval(
            "SELECT sum(quantity) FROM product_daily_sales WHERE product_id = $1", product_id
        )
    finally:
        await conn.close()


async def test_a_poll_applies_each_message_once_and_skips_other_types(
    scratch: Settings,
) -> None:
    settings = scratch
    one = envelope(paid("batch-dedup", 2))
    failed = envelope(
        OrderFailed(
            order_id="o",
            user_id="u",
            failure_code="OUT_OF_STOCK",
            failed_at=datetime(2045, 5, 5, tzinfo=UTC),
        )
    )
    await process(settings, record(one), record(failed), record(one))
    applied = await sold(settings.database_url, "batch-dedup")
    await process(settings, record(one))

    assert (applied, await sold(settings.database_url, "batch-dedup")) == (2, 2)
    ids = await recorded(settings.database_url)
    assert one.message_id in ids and failed.message_id not in ids


async def test_a_failing_event_is_dead_lettered_alone_and_the_rest_of_its_poll_applies(
    scratch: Settings,
) -> None:
    settings = scratch
    good = envelope(paid("batch-good", 3))
    # Valid as a contract, refused by the database (ids are at most 100 characters).
    poison = envelope(paid("x" * 150, 1))
    fast = settings.model_copy(update={"consumer_max_attempts": 2})
    await process(fast, record(poison), record(good))

    assert await sold(settings.database_url, "batch-good") == 3
    conn = await asyncpg.connect(asyncpg_dsn(settings.database_url))
    try:
        outcome = await conn.fetchval(
            "SELECT outcome FROM inbox WHERE message_id = $1", poison.message_id
        )
        dead = await conn.fetchval(
            "SELECT count(*) FROM outbox WHERE topic = 'order.events.dlt' AND envelope->>'causation_id' = $1",
            str(poison.message_id),
        )
    finally:
        await conn.close()
    assert (outcome, dead) == ("dead-lettered", 1)


async def dead_letters(database_url: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        return await conn.fetch("SELECT * FROM dead_letters ORDER BY dead_at")
    finally:
        await conn.close()


async def test_a_dead_letter_says_where_its_record_was(scratch: Settings) -> None:
    poison = envelope(paid("y" * 150, 1))  # refused by the database, every time
    fast = scratch.model_copy(update={"consumer_max_attempts": 2})
    await process(fast, record(poison, partition=3, offset=42))
    letter = next(
        r for r in await dead_letters(fast.database_url) if r["message_id"] == poison.message_id
    )
    assert (letter["partition"], letter["offset"], letter["attempts"]) == (3, 42, 2)
    assert letter["topic"] == "order.events"


async def test_an_event_from_a_newer_producer_with_fields_it_does_not_know_is_read(
    scratch: Settings,
) -> None:
    sent = envelope(paid("newer-producer", 2))
    body = orjson.loads(orjson.dumps(sent.model_dump(mode="json")))
    body["payload"]["coupon_campaign"] = "spring"
    body["payload"]["lines"][0]["warehouse"] = "east"
    await process(scratch, record(sent, body=orjson.dumps(body)))
    assert await sold(scratch.database_url, "newer-producer") == 2


async def test_a_database_outage_is_waited_out_not_dead_lettered(
    scratch: Settings, infra: Infra
) -> None:
    """The poll fails while the database refuses connections, and is applied once it is back."""
    event = envelope(paid("through-the-outage", 4))
    db = Database(scratch.database_url, pool_size=1)
    try:
        async with database_refusing(infra.pg_admin_url, scratch.database_url):
            applying = asyncio.create_task(
                projection_consumer(scratch).process_poll([record(event)], db=db, settings=scratch)
            )
            await asyncio.sleep(1.5)
            assert not applying.done()
        await asyncio.wait_for(applying, timeout=15)
    finally:
        await db.dispose()
    assert await sold(scratch.database_url, "through-the-outage") == 4
    assert not [
        r for r in await dead_letters(scratch.database_url) if r["message_id"] == event.message_id
    ]


async def test_a_redriven_dead_letter_is_applied_once_after_the_fix(scratch: Settings) -> None:
    settings = scratch.model_copy(update={"consumer_max_attempts": 2})
    event = envelope(paid("redriven-product", 4))
    conn = await asyncpg.connect(asyncpg_dsn(settings.database_url))
    db = Database(settings.database_url, pool_size=1)
    try:
        # A fault only this product meets, until the operator repairs it.
        await conn.execute(
            "ALTER TABLE product_daily_sales ADD CONSTRAINT broken"
            " CHECK (product_id <> 'redriven-product')"
        )
        await process(settings, record(event))
        letter = await conn.fetchval(
            "SELECT id FROM dead_letters WHERE message_id = $1 AND status = 'DEAD'",
            event.message_id,
        )
        assert letter is not None
        assert await sold(settings.database_url, "redriven-product") is None
        await conn.execute("ALTER TABLE product_daily_sales DROP CONSTRAINT broken")

        await redrive(
            db, letter_id=letter, by="admin", now=datetime.now(UTC), window=timedelta(days=13)
        )
        # The redriven copy arrives (twice: a redelivery of it is skipped as any other).
        await process(settings, record(event))
        applied = await sold(settings.database_url, "redriven-product")
        await process(settings, record(event))
        status = await conn.fetchval("SELECT status FROM dead_letters WHERE id = $1", letter)
    finally:
        await db.dispose()
        await conn.close()
    assert (applied, await sold(settings.database_url, "redriven-product")) == (4, 4)
    assert status == "REDRIVEN"
