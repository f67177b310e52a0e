"""Catalog benchmark: reservation throughput on a hot product, and listing latency at 100k.

    .venv/bin/python bench/catalog_bench.py [--seconds 5] [--clients 4,32] [--products 100000]

Creates its own database (dropped at the end) on the PostgreSQL named by SHOP_TEST_PG_ADMIN_URL
(else SHOP_PG_USER/SHOP_PG_PASSWORD/SHOP_PG_PORT on 127.0.0.1, as the local stack uses), applies
the catalog migrations, and runs the service's own code paths:
  1. many clients reserving 1 unit of ONE hot product through `stock.reserve_stocks` (claim row,
     stock update, reply in the outbox: the whole transaction a ReserveStock message costs);
  2. the locking step alone, in a bare transaction, with each strategy of bench/stock_strategies.py
     (the service's conditional UPDATE, pessimistic and optimistic locking);
  3. `service.list_products` with random filters over 100,000 products, one client
     (bench/catalog_listing.py).
Stops by itself and prints tables; docs/catalog.md records the figures.
"""

import argparse
import asyncio
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from catalog_listing import fill_products, listings, percentile
from local_infra import pg_admin_url
from stock_strategies import STRATEGIES, StockContention

from catalog import stock
from contracts.catalog import ReserveStock, StockLine
from shopdev.stack import SERVICES, migrate
from shopkit.db import Database

ROOT = Path(__file__).resolve().parents[1]


async def create_product(conn: asyncpg.Connection, available: int) -> str:
    pid = str(uuid.uuid4())
    now = datetime.now(UTC)
    await conn.execute(
        "INSERT INTO products (id, name, category, price, description, created_at, updated_at)"
        " VALUES ($1, 'hot product', 'ELECTRONICS', 10000, '', $2, $2)",
        pid,
        now,
    )
    await conn.execute(
        "INSERT INTO stock (product_id, available, reserved, sold, version) VALUES ($1, $2, 0, 0, 0)",
        pid,
        available,
    )
    return pid


async def reservations(
    url: str, conn: asyncpg.Connection, strategy: str, clients: int, seconds: float
) -> dict[str, Any]:
    """`clients` workers reserve 1 unit of one product for `seconds` through the service, one
    command per transaction; what they achieved. The service has one strategy (`strategy` only
    labels the row)."""
    product_id = await create_product(conn, available=10_000_000)
    db = Database(url, pool_size=clients)
    latencies: list[float] = []
    counts = {"ok": 0, "failed": 0, "gave_up": 0, "retries": 0}
    deadline = time.monotonic() + seconds
    now = datetime.now(UTC)

    async def worker() -> None:
        while time.monotonic() < deadline:
            command = ReserveStock(
                order_id=str(uuid.uuid4()),
                operation_id=str(uuid.uuid4()),
                lines=(StockLine(product_id=product_id, quantity=1),),
            )
            started = time.perf_counter()
            async with db.transaction() as conn:
                [outcome] = await stock.reserve_stocks(conn, commands=[(command, None)], now=now)
            latencies.append(time.perf_counter() - started)
            assert outcome is not None
            counts["failed" if outcome.reason else "ok"] += 1

    started = time.monotonic()
    try:
        await asyncio.gather(*[worker() for _ in range(clients)])
    finally:
        elapsed = time.monotonic() - started
        await db.dispose()
    row = await conn.fetchrow(
        "SELECT available, reserved FROM stock WHERE product_id = $1", product_id
    )
    assert row["reserved"] == counts["ok"], "reserved units must equal successful reservations"
    assert row["available"] + row["reserved"] == 10_000_000, "units were created or lost"
    return {
        "strategy": strategy,
        "clients": clients,
        "per_s": counts["ok"] / elapsed,
        "p50_ms": percentile(latencies, 50) * 1000 if latencies else 0.0,
        "p99_ms": percentile(latencies, 99) * 1000 if latencies else 0.0,
        **counts,
    }


async def raw_reservations(
    dsn: str, conn: asyncpg.Connection, strategy: str, clients: int, seconds: float
) -> dict[str, Any]:
    """The locking step alone (asyncpg, no claim/outbox rows), with `strategy`: its own ceiling."""
    product_id = await create_product(conn, available=10_000_000)
    pool = await asyncpg.create_pool(dsn, min_size=clients, max_size=clients)
    take = STRATEGIES[strategy]
    latencies: list[float] = []
    counts = {"ok": 0, "retries": 0, "gave_up": 0}
    deadline = time.monotonic() + seconds

    async def worker() -> None:
        async with pool.acquire() as c:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                try:
                    async with c.transaction():
                        short, retries = await take(c, {product_id: 1})
                except StockContention:
                    counts["gave_up"] += 1
                    continue
                assert not short
                latencies.append(time.perf_counter() - started)
                counts["ok"] += 1
                counts["retries"] += retries

    started = time.monotonic()
    try:
        await asyncio.gather(*[worker() for _ in range(clients)])
    finally:
        elapsed = time.monotonic() - started
        await pool.close()
    reserved = await conn.fetchval("SELECT reserved FROM stock WHERE product_id = $1", product_id)
    assert reserved == counts["ok"], "reserved units must equal successful reservations"
    return {
        "strategy": strategy,
        "clients": clients,
        "per_s": counts["ok"] / elapsed,
        "p50_ms": percentile(latencies, 50) * 1000 if latencies else 0.0,
        "p99_ms": percentile(latencies, 99) * 1000 if latencies else 0.0,
        **counts,
    }


RESERVE_HEADER = (
    f"{'strategy':<12} {'clients':>7} {'reserved/s':>10} {'p50 ms':>8} {'p99 ms':>8}"
    f" {'retries':>8} {'gave up':>8}"
)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per strategy and client count")
    parser.add_argument("--clients", default="4,32", help="comma-separated concurrent clients")
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200, help="listing requests per scenario")
    args = parser.parse_args()

    admin = pg_admin_url()
    name = f"bench_catalog_{uuid.uuid4().hex[:8]}"
    server = await asyncpg.connect(admin)
    await server.execute(f'CREATE DATABASE "{name}"')
    base = admin.rsplit("/", 1)[0]
    url = f"{base}/{name}".replace("postgresql://", "postgresql+asyncpg://", 1)
    conn = None
    try:
        spec = next(s for s in SERVICES if s.name == "catalog")
        await asyncio.to_thread(migrate, ROOT, spec, url)
        conn = await asyncpg.connect(f"{base}/{name}")
        print(f"# catalog benchmark on {os.cpu_count()} cores, database {name}", flush=True)

        for title, run, target, strategies in (
            (
                "the whole ReserveStock transaction (service code)",
                reservations,
                url,
                ["conditional"],
            ),
            (
                "the locking step alone (raw asyncpg)",
                raw_reservations,
                f"{base}/{name}",
                list(STRATEGIES),
            ),
        ):
            print(f"\n## Reserving 1 unit of one hot product: {title}", flush=True)
            print(RESERVE_HEADER)
            print("-" * len(RESERVE_HEADER))
            for clients in [int(c) for c in args.clients.split(",")]:
                for strategy in strategies:
                    r = await run(target, conn, strategy, clients, args.seconds)
                    print(
                        f"{r['strategy']:<12} {r['clients']:>7} {r['per_s']:>10.0f}"
                        f" {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['retries']:>8}"
                        f" {r['gave_up']:>8}",
                        flush=True,
                    )

        print(f"\n## Listing over {args.products:,} products (limit 20, one client)", flush=True)
        started = time.monotonic()
        await fill_products(conn, args.products)
        print(f"(filled in {time.monotonic() - started:.1f} s)", flush=True)
        header = f"{'scenario':<42} {'p50 ms':>8} {'p99 ms':>8}"
        print(header)
        print("-" * len(header))
        for r in await listings(url, args.requests):
            print(f"{r['scenario']:<42} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f}", flush=True)
    finally:
        if conn is not None:
            await conn.close()
        await server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await server.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
