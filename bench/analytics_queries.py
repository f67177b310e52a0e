"""The analytics benchmark's query part: a year of daily aggregates for every product, filled
straight into the tables, and the HTTP endpoints timed in-process over it."""

import random
import statistics
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx

from analytics.api import router
from analytics.settings import Settings
from shopkit.app import create_app
from shopkit.clock import FrozenClock

SEOUL = ZoneInfo("Asia/Seoul")
TODAY = date(2026, 11, 20)
CATEGORIES = [f"category-{i:02d}" for i in range(20)]


def percentile(samples: Sequence[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def product(i: int) -> tuple[str, str, int]:
    """Product i's id, category and price."""
    return f"p{i:05d}", CATEGORIES[i % len(CATEGORIES)], 1_000 + (i * 37) % 99_000


async def fill_year(dsn: str, products: int, days: int) -> int:
    """Daily sales of every product on every day, with matching category and shop totals."""
    rng = random.Random(7)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.copy_records_to_table(
            "products",
            records=[
                (pid, f"product {pid}", category, price, "catalog", None)
                for pid, category, price in map(product, range(products))
            ],
            columns=["product_id", "name", "category", "price", "source", "seen_at"],
        )
        by_category: dict[tuple[str, date], list[int]] = defaultdict(lambda: [0, 0, 0])
        by_day: dict[date, list[int]] = defaultdict(lambda: [0, 0, 0])
        rows = 0
        for d in range(days):
            day = TODAY - timedelta(days=d)
            records = []
            for i in range(products):
                pid, category, price = product(i)
                quantity = rng.randint(1, 20)
                orders = rng.randint(1, quantity)
                records.append((pid, day, category, quantity, quantity * price, orders))
                for bucket in (by_category[category, day], by_day[day]):
                    bucket[0] += quantity
                    bucket[1] += quantity * price
                    bucket[2] += orders
            await conn.copy_records_to_table("product_daily_sales", records=records)
            rows += len(records)
        await conn.copy_records_to_table(
            "category_daily_sales", records=[(c, d, *f) for (c, d), f in by_category.items()]
        )
        await conn.copy_records_to_table(
            "daily_sales", records=[(d, *f) for d, f in by_day.items()]
        )
        await conn.execute("VACUUM ANALYZE")
        return rows
    finally:
        await conn.close()


async def time_queries(settings: Settings, queries: int) -> list[tuple[str, int, float, float]]:
    clock = FrozenClock(datetime.combine(TODAY, dtime(12), SEOUL).astimezone(UTC))
    app = create_app(settings, title="bench", routers=[router], clock=clock)
    year = {"from": str(TODAY - timedelta(days=364)), "to": str(TODAY)}
    cases: list[tuple[str, str, dict[str, Any], int]] = [
        ("popular default (3 days, top 5)", "/api/products/popular", {}, queries),
        (
            "popular 7 days by amount, category",
            "/api/products/popular",
            {"days": 7, "metric": "amount", "category": CATEGORIES[3]},
            queries,
        ),
        ("popular 30 days, top 100", "/api/products/popular", {"days": 30, "limit": 100}, 20),
        ("stats day, a year", "/api/stats/sales", {"period": "day", **year}, queries),
        (
            "stats week, a year, category",
            "/api/stats/sales",
            {"period": "week", "category": CATEGORIES[5], **year},
            queries,
        ),
        (
            "stats month, a year, product",
            "/api/stats/sales",
            {"period": "month", "product_id": "p04242", **year},
            queries,
        ),
    ]
    results = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for name, path, params, n in cases:
                samples = []
                for _ in range(3):  # warm up
                    assert (await client.get(path, params=params)).status_code == 200
                for _ in range(n):
                    started = time.perf_counter()
                    response = await client.get(path, params=params)
                    samples.append((time.perf_counter() - started) * 1000)
                    assert response.status_code == 200, response.text
                results.append((name, n, statistics.median(samples), percentile(samples, 99)))
    return results
