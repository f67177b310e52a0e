"""Listing latency over many products, for catalog_bench.py: the fill and the random requests.

Every request goes through `service.list_products`, as GET /api/products does.
"""

import random
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from catalog.domain import CATEGORIES
from catalog.service import ProductFilter, list_products
from shopkit.db import Database

WORDS = [
    "lamp",
    "mug",
    "desk",
    "chair",
    "phone",
    "cable",
    "shirt",
    "jeans",
    "shoe",
    "apple",
    "coffee",
    "tea",
    "novel",
    "atlas",
    "towel",
    "ball",
    "racket",
    "bike",
    "cream",
    "lotion",
    "robot",
    "puzzle",
    "blocks",
    "camera",
    "speaker",
    "watch",
    "bag",
    "cap",
    "sock",
]
ADJECTIVES = [
    "red",
    "blue",
    "green",
    "black",
    "white",
    "small",
    "large",
    "smart",
    "classic",
    "premium",
    "eco",
    "mini",
]


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


async def fill_products(conn: asyncpg.Connection, count: int) -> None:
    """`count` products spread over categories, prices and a year of creation times."""
    rng = random.Random(42)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    codes = [code for code, _ in CATEGORIES]
    products, stocks = [], []
    for i in range(count):
        pid = str(uuid.UUID(int=rng.getrandbits(128)))
        name = f"{rng.choice(ADJECTIVES)} {rng.choice(WORDS)} {rng.choice(WORDS)} {i}"
        created = start + timedelta(seconds=rng.randrange(365 * 86_400))
        price = rng.randrange(1, 1_000) * 1_000
        products.append((pid, name, rng.choice(codes), price, "", created, created))
        # One product in twenty is sold out.
        stocks.append((pid, 0 if rng.random() < 0.05 else rng.randrange(1, 500), 0, 0, 0))
    await conn.copy_records_to_table(
        "products",
        records=products,
        columns=["id", "name", "category", "price", "description", "created_at", "updated_at"],
    )
    await conn.copy_records_to_table(
        "stock", records=stocks, columns=["product_id", "available", "reserved", "sold", "version"]
    )
    await conn.execute("ANALYZE products; ANALYZE stock")


def scenarios(rng: random.Random) -> dict[str, Any]:
    """Listing requests: name -> a function giving (filters, sort) for one random request."""
    codes = [code for code, _ in CATEGORIES]

    def price_range() -> tuple[int, int]:
        low = rng.randrange(0, 900) * 1_000
        return low, low + rng.randrange(10, 200) * 1_000

    return {
        "no filter, newest": lambda: (ProductFilter(), "newest"),
        "category, newest": lambda: (ProductFilter(category=rng.choice(codes)), "newest"),
        "category + price range, price_asc": lambda: (
            ProductFilter(
                category=rng.choice(codes), min_price=price_range()[0], max_price=price_range()[1]
            ),
            "price_asc",
        ),
        "price range, price_desc": lambda: (
            ProductFilter(min_price=(r := price_range())[0], max_price=r[1]),
            "price_desc",
        ),
        "q (name contains), newest": lambda: (ProductFilter(q=rng.choice(WORDS)), "newest"),
        "q + category, name": lambda: (
            ProductFilter(q=rng.choice(WORDS), category=rng.choice(codes)),
            "name",
        ),
        "sold_out=only, newest": lambda: (ProductFilter(sold_out="only"), "newest"),
        "category + sold_out=exclude, price_desc": lambda: (
            ProductFilter(category=rng.choice(codes), sold_out="exclude"),
            "price_desc",
        ),
        "everything: category+q+price+exclude": lambda: (
            ProductFilter(
                category=rng.choice(codes),
                q=rng.choice(WORDS),
                min_price=(r := price_range())[0],
                max_price=r[1] + 300_000,
                sold_out="exclude",
            ),
            "price_asc",
        ),
    }


async def listings(url: str, requests: int) -> list[dict[str, Any]]:
    db = Database(url, pool_size=2)
    rng = random.Random(7)
    results = []
    try:
        for name, make in scenarios(rng).items():
            samples = []
            for i in range(requests):
                filters, sort = make()
                cursor = None
                if i % 4 == 3:  # every fourth request reads a later page, through a cursor
                    _, cursor = await list_products(
                        db, filters=filters, sort=sort, limit=100, cursor=None
                    )
                started = time.perf_counter()
                await list_products(db, filters=filters, sort=sort, limit=20, cursor=cursor)
                samples.append(time.perf_counter() - started)
            results.append(
                {
                    "scenario": name,
                    "p50_ms": statistics.median(samples) * 1000,
                    "p99_ms": percentile(samples, 99) * 1000,
                }
            )
    finally:
        await db.dispose()
    return results
