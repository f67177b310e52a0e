"""The batch consumer's own rules, on the real database: dedup inside a batch, poison isolation."""

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import orjson
import pytest

from analytics.consumer import Record
from analytics.handlers import consumer
from analytics.settings import Settings
from contracts import Envelope
from contracts.order import OrderFailed, OrderPaid, SoldLine
from shopkit.db import Database, asyncpg_dsn
from shopkit.dead_letters import redrive
from shopkit.outbox import envelope_for
from shopkit.testing import Infra, create_database, database_refusing, unique_name

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


def record(envelope: Envelope) -> tuple[str, bytes]:
    return "order.events", orjson.dumps(envelope.model_dump(mode="json"))


async def sold(database_url: str, product_id: str) -> int | None:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        return await conn.fetchval(
            "SELECT sum(quantity) FROM product_daily_sales WHERE product_id = $1", product_id
        )
    finally:
        await conn.close()


async def test_a_batch_applies_each_message_once_and_skips_other_types(
    scratch: Settings,
) -> None:
    settings = scratch
    one = envelope_for(paid("batch-dedup", 2))
    failed = envelope_for(
        OrderFailed(
            order_id="o",
            user_id="u",
            failure_code="OUT_OF_STOCK",
            failed_at=datetime(2045, 5, 5, tzinfo=UTC),
        )
    )
    db = Database(settings.database_url, pool_size=1)
    try:
        applied = await consumer.process(
            [record(one), record(failed), record(one)], db=db, settings=settings
        )
        again = await consumer.process([record(one)], db=db, settings=settings)
    finally:
        await db.dispose()

    assert (applied, again) == (1, 0)
    assert await sold(settings.database_url, "batch-dedup") == 2


async def test_a_failing_event_is_dead_lettered_alone_and_the_rest_of_its_batch_applies(
    scratch: Settings,
) -> None:
    settings = scratch
    good = envelope_for(paid("batch-good", 3))
    # Valid as a contract, refused by the database (ids are at most 100 characters).
    poison = envelope_for(paid("x" * 150, 1))
    fast = settings.model_copy(update={"consumer_max_attempts": 2})
    db = Database(settings.database_url, pool_size=1)
    try:
        applied = await consumer.process([record(poison), record(good)], db=db, settings=fast)
    finally:
        await db.dispose()

    assert applied == 1
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
    poison = envelope_for(paid("y" * 150, 1))  # refused by the database, every time
    fast = scratch.model_copy(update={"consumer_max_attempts": 2})
    db = Database(fast.database_url, pool_size=1)
    try:
        topic, value = record(poison)
        await consumer.process([Record(topic, value, 3, 42)], db=db, settings=fast)
    finally:
        await db.dispose()
    letter = next(
        r for r in await dead_letters(fast.database_url) if r["message_id"] == poison.message_id
    )
    assert (letter["partition"], letter["offset"], letter["attempts"]) == (3, 42, 2)
    assert letter["topic"] == "order.events"


def test_an_event_from_a_newer_producer_with_fields_it_does_not_know_is_read() -> None:
    event = paid("newer-producer", 2)
    body = orjson.loads(orjson.dumps(envelope_for(event).model_dump(mode="json")))
    body["payload"]["coupon_campaign"] = "spring"
    body["payload"]["lines"][0]["warehouse"] = "east"
    delivery = consumer.decode("order.events", orjson.dumps(body))
    assert delivery is not None and delivery.message == event


async def test_a_database_outage_is_waited_out_not_dead_lettered(
    scratch: Settings, infra: Infra
) -> None:
    """The batch fails while the database refuses connections, and is applied once it is back."""
    event = envelope_for(paid("through-the-outage", 4))
    db = Database(scratch.database_url, pool_size=1)
    try:
        async with database_refusing(infra.pg_admin_url, scratch.database_url):
            applying = asyncio.create_task(
                consumer.process([record(event)], db=db, settings=scratch)
            )
            await asyncio.sleep(1.5)
            assert not applying.done()
        assert await asyncio.wait_for(applying, timeout=15) == 1
    finally:
        await db.dispose()
    assert await sold(scratch.database_url, "through-the-outage") == 4
    assert not [
        r for r in await dead_letters(scratch.database_url) if r["message_id"] == event.message_id
    ]


async def test_a_redriven_dead_letter_is_applied_once_after_the_fix(scratch: Settings) -> None:
    settings = scratch.model_copy(update={"consumer_max_attempts": 2})
    event = envelope_for(paid("redriven-product", 4))
    conn = await asyncpg.connect(asyncpg_dsn(settings.database_url))
    db = Database(settings.database_url, pool_size=1)
    try:
        # A fault only this product meets, until the operator repairs it.
        await conn.execute(
            "ALTER TABLE product_daily_sales ADD CONSTRAINT broken"
            " CHECK (product_id <> 'redriven-product')"
        )
        assert await consumer.process([record(event)], db=db, settings=settings) == 0
        letter = await conn.fetchval(
            "SELECT id FROM dead_letters WHERE message_id = $1 AND status = 'DEAD'",
            event.message_id,
        )
        assert letter is not None
        await conn.execute("ALTER TABLE product_daily_sales DROP CONSTRAINT broken")

        await redrive(
            db, letter_id=letter, by="admin", now=datetime.now(UTC), window=timedelta(days=13)
        )
        # The redriven copy arrives (twice: a redelivery of it is skipped as any other).
        applied = await consumer.process([record(event)], db=db, settings=settings)
        again = await consumer.process([record(event)], db=db, settings=settings)
        status = await conn.fetchval("SELECT status FROM dead_letters WHERE id = $1", letter)
    finally:
        await db.dispose()
        await conn.close()
    assert (applied, again, status) == (1, 0, "REDRIVEN")
    assert await sold(settings.database_url, "redriven-product") == 4
