"""Analytics benchmark: projection events/s through real Kafka, and query latency over a year.

    .venv/bin/python bench/analytics_bench.py [--events 20000] [--kit-defaults 5000]
        [--products 10000] [--days 365] [--queries 200]

Uses the PostgreSQL of SHOP_TEST_PG_ADMIN_URL (else SHOP_PG_* on 127.0.0.1, as the local stack
does) and the Kafka of SHOP_TEST_KAFKA_BOOTSTRAP (else 127.0.0.1:9092), in a fresh topic
namespace and fresh databases that are dropped at the end.
  1. Consumer: publishes `--events` OrderPaid events (1-3 lines over `--products` products,
     paid on random days of the last year), then times the projection consumer as the service
     configures it (500 records a poll, lingering after a poll that was not full); then the
     same consumer with the kit's defaults (`consumer_batch_size` records a poll, no linger),
     on `--kit-defaults` events, for comparison.
  2. Queries: fills the aggregate tables directly with a year of daily sales for every one of
     `--products` products, then times the HTTP endpoints in-process (ASGI, no network).
Stops by itself and prints tables; docs/analytics.md records the figures.
"""

import argparse
import asyncio
import os
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from pathlib import Path

import asyncpg
from analytics_queries import SEOUL, TODAY, fill_year, product, time_queries
from local_infra import admin_execute, pg_admin_url

from analytics.handlers import CONSUMER, projection_consumer
from analytics.settings import Settings
from contracts.order import OrderPaid, SoldLine
from shopdev.stack import SERVICES, migrate
from shopdev.testing import KafkaProbe, session_keys
from shopkit.db import Database
from shopkit.kafka_admin import ensure_topics

ROOT = Path(__file__).resolve().parents[1]
KIT_POLL: int = Settings.model_fields["consumer_batch_size"].default


def random_order(rng: random.Random, products: int, days: int) -> OrderPaid:
    lines = []
    for i in rng.sample(range(products), rng.randint(1, 3)):
        pid, category, price = product(i)
        lines.append(
            SoldLine(
                product_id=pid,
                name=f"product {pid}",
                category=category,
                quantity=rng.randint(1, 5),
                unit_price=price,
            )
        )
    day = TODAY - timedelta(days=rng.randrange(days))
    paid_at = datetime.combine(day, dtime(rng.randrange(24), rng.randrange(60)), SEOUL)
    total = sum(line.quantity * line.unit_price for line in lines)
    return OrderPaid(
        order_id=str(uuid.uuid4()),
        user_id="bench",
        lines=tuple(lines),
        subtotal=total,
        discount=0,
        total=total,
        paid_at=paid_at.astimezone(UTC),
    )


async def publish(bootstrap: str, namespace: str, messages: list[OrderPaid]) -> float:
    started = time.perf_counter()
    await KafkaProbe(bootstrap, namespace).publish_many(list(messages))
    return len(messages) / (time.perf_counter() - started)


async def count_inbox(dsn: str, consumer: str) -> tuple[int, float]:
    """How many events a consumer recorded, and the seconds between its first and last."""
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) AS n, extract(epoch FROM max(processed_at) - min(processed_at)) AS s"
            " FROM inbox WHERE consumer = $1",
            consumer,
        )
        return int(row["n"]), float(row["s"] or 0)
    finally:
        await conn.close()


async def time_consumer(settings: Settings, dsn: str, *, expected: int) -> dict[str, float]:
    db = Database(settings.database_url, pool_size=4)
    subscription = projection_consumer(settings).subscribe(db, settings)
    started = time.perf_counter()
    await subscription.start()
    try:
        deadline = started + 600
        while (await count_inbox(dsn, CONSUMER))[0] < expected:
            if time.perf_counter() > deadline:
                raise RuntimeError("the consumer did not catch up in 10 minutes")
            await asyncio.sleep(0.2)
        wall = time.perf_counter() - started
    finally:
        await subscription.stop()
        await db.dispose()
    _, span = await count_inbox(dsn, CONSUMER)
    return {"events": expected, "wall_s": wall, "steady_s": span}


async def new_database(admin: str, label: str) -> tuple[str, str]:
    name = f"bench_analytics_{label}_{uuid.uuid4().hex[:6]}"
    await admin_execute(admin, f'CREATE DATABASE "{name}"')
    base = admin.rsplit("/", 1)[0]
    url = f"postgresql+asyncpg://{base.split('://', 1)[1]}/{name}"
    spec = next(s for s in SERVICES if s.name == "analytics")
    await asyncio.to_thread(migrate, ROOT, spec, url)
    return name, url


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--kit-defaults", type=int, default=5_000)
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--only", choices=["consumer", "queries"], help="run one part")
    args = parser.parse_args()
    admin = pg_admin_url()
    bootstrap = os.environ.get("SHOP_TEST_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    created: list[str] = []
    rng = random.Random(42)
    try:
        print(f"== consumer: {args.events} OrderPaid events over {args.products} products ==")
        rows = []
        for label, count, configured in (
            ("projection", args.events, {}),
            (
                "kit-defaults",
                args.kit_defaults,
                {"batch_max_records": KIT_POLL, "batch_linger_ms": 0},
            ),
        ):
            if count <= 0 or args.only == "queries":
                continue
            namespace = f"bench{uuid.uuid4().hex[:6]}."
            await ensure_topics(bootstrap, namespace)
            name, url = await new_database(admin, label.replace("-", ""))
            created.append(name)
            messages = [random_order(rng, args.products, args.days) for _ in range(count)]
            sent = await publish(bootstrap, namespace, messages)
            settings = Settings(
                database_url=url,
                kafka_bootstrap=bootstrap,
                kafka_namespace=namespace,
                log_json=False,
                log_level="WARNING",
            ).model_copy(update=configured)
            timing = await time_consumer(settings, url.replace("+asyncpg", ""), expected=count)
            rows.append((label, count, sent, timing))
        print(
            f"{'consumer':<12} {'events':>7} {'published/s':>12} {'events/s (wall)':>16} "
            f"{'events/s (steady)':>18}"
        )
        for label, count, sent, t in rows:
            steady = count / t["steady_s"] if t["steady_s"] else float("nan")
            print(
                f"{label:<12} {count:>7} {sent:>12,.0f} {count / t['wall_s']:>16,.0f} "
                f"{steady:>18,.0f}"
            )

        if args.only == "consumer":
            return
        print(f"\n== queries: {args.days} days x {args.products} products ==")
        name, url = await new_database(admin, "queries")
        created.append(name)
        started = time.perf_counter()
        filled = await fill_year(url.replace("+asyncpg", ""), args.products, args.days)
        print(f"filled {filled:,} product-day rows in {time.perf_counter() - started:.1f}s")
        settings = Settings(
            database_url=url,
            kafka_bootstrap=bootstrap,
            log_json=False,
            log_level="WARNING",
            # Reads are public; the app still starts only with a key to verify tokens with.
            jwt_public_keys=[session_keys().public_key],
        )
        print(f"{'query':<38} {'n':>4} {'p50 ms':>8} {'p99 ms':>8}")
        for query, n, p50, p99 in await time_queries(settings, args.queries):
            print(f"{query:<38} {n:>4} {p50:>8.1f} {p99:>8.1f}")
    finally:
        server = await asyncpg.connect(admin)
        try:
            for name in created:
                await server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await server.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
