"""A rebuild from the Kafka topics into a fresh database gives the live projection's answers."""

import asyncio
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from analytics import service
from analytics.handlers import CONSUMER
from analytics.settings import Settings
from contracts.catalog import ProductChanged
from contracts.order import OrderCancelled, OrderModified, SoldLine
from shopdev.testing import Infra, create_database, poll, unique_name
from shopkit.db import Database, asyncpg_dsn

SERVICE_DIR = Path(__file__).resolve().parents[1]
TABLES = {
    "products": "product_id",
    "sale_orders": "order_id",
    "product_daily_sales": "product_id, day, category",
    "category_daily_sales": "category, day",
    "daily_sales": "day",
}


async def table_rows(database_url: str) -> dict[str, list[tuple]]:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        return {
            table: [tuple(r) for r in await conn.fetch(f"SELECT * FROM {table} ORDER BY {key}")]
            for table, key in TABLES.items()
        }
    finally:
        await conn.close()


async def projected(database_url: str) -> int:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        return int(await conn.fetchval("SELECT count(*) FROM inbox WHERE consumer = $1", CONSUMER))
    finally:
        await conn.close()


async def answers(database_url: str, today: date) -> list[Any]:
    db = Database(database_url, pool_size=1)
    try:
        found: list[Any] = []
        for metric in ("quantity", "amount"):
            found.append(
                await service.popular_products(
                    db,
                    start=today - timedelta(days=29),
                    end=today,
                    limit=100,
                    metric=metric,
                    category=None,
                )
            )
        for period in ("day", "week", "month"):
            found.append(
                await service.sales_statistics(
                    db,
                    start=today - timedelta(days=90),
                    end=today,
                    period=period,
                    category=None,
                    product_id=None,
                )
            )
        return found
    finally:
        await db.dispose()


async def test_a_rebuild_gives_identical_results(shop, infra: Infra, settings: Settings) -> None:
    today = date(2040, 2, 20)
    shop.today(today)
    a, b = f"rebuild-{today}-a", f"rebuild-{today}-b"
    first = await shop.paid([(a, 3, 1_000, "books"), (b, 1, 9_000, "toys")], on=today)
    second = await shop.paid([(a, 2, 1_000, "books")], on=today - timedelta(days=40))
    await shop.paid([(b, 4, 9_000, "toys")], on=today - timedelta(days=8))
    await shop.publish(
        OrderCancelled(
            order_id=second.order_id,
            user_id="u-1",
            lines=second.lines,
            total=2_000,
            paid_at=second.paid_at,
            cancelled_at=shop.clock(),
        )
    )
    await shop.publish(
        OrderModified(
            order_id=first.order_id,
            user_id="u-1",
            previous_lines=first.lines,
            lines=(SoldLine(product_id=a, name="A", category="books", quantity=5, unit_price=900),),
            total=4_500,
            paid_at=first.paid_at,
            modified_at=shop.clock(),
        )
    )
    await shop.publish(
        ProductChanged(product_id=b, name="Toy B", category="toys", price=8_000, stock=3)
    )
    await shop.publish(first, envelope=shop.published[0])  # a redelivery
    await shop.caught_up()

    fresh = await create_database(infra, SERVICE_DIR, unique_name("analytics"))
    env = {
        **os.environ,
        "SHOP_DATABASE_URL": fresh,
        "SHOP_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "SHOP_KAFKA_NAMESPACE": settings.kafka_namespace,
    }
    done = await rebuild_cli(env)
    assert done.returncode == 0, done.stderr
    rebuilt = orjson.loads(done.stdout.strip().splitlines()[-1])["rebuilt"]
    assert rebuilt["applied"] >= 6 and rebuilt["records"] > rebuilt["applied"]

    # The live consumer may still be on other tests' events: wait until it has them all.
    replayed = await projected(fresh)
    await poll(lambda: projected(settings.database_url), until=lambda n: n == replayed)
    assert await table_rows(fresh) == await table_rows(settings.database_url)
    assert await answers(fresh, today) == await answers(settings.database_url, today)
    [top] = [p for p in (await answers(fresh, today))[0] if p.product_id == b]
    assert (top.name, top.quantity) == ("Toy B", 4)  # the modify dropped its line of b

    refused = await rebuild_cli(env)
    assert refused.returncode == 2 and "--truncate" in refused.stderr
    redone = await rebuild_cli(env, "--truncate")
    assert redone.returncode == 0, redone.stderr
    assert await table_rows(fresh) == await table_rows(settings.database_url)


async def rebuild_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "analytics.rebuild", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
