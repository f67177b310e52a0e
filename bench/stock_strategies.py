"""The locking strategies catalog_bench.py compares with the catalog's own (`take_lines`).

Each moves the wanted units of every line from available to reserved, all or none, inside the
caller's transaction, and returns (short products, attempts lost to a concurrent change). The
service keeps the conditional UPDATE; docs/catalog.md records why.
"""

import asyncio
import random
from collections.abc import Awaitable, Callable

import asyncpg

from catalog.domain import short_products
from catalog.stock.reserve import take_lines

OPTIMISTIC_ATTEMPTS = 50

Strategy = Callable[[asyncpg.Connection, dict[str, int]], Awaitable[tuple[list[str], int]]]


class StockContention(Exception):
    """Optimistic locking lost every attempt."""


async def conditional(conn: asyncpg.Connection, wanted: dict[str, int]) -> tuple[list[str], int]:
    """The service's: one `UPDATE ... WHERE available >= q` per line."""
    return await take_lines(conn, wanted), 0


async def pessimistic(conn: asyncpg.Connection, wanted: dict[str, int]) -> tuple[list[str], int]:
    """Lock the stock rows (FOR UPDATE, id order), check them all, then update."""
    rows = await conn.fetch(
        "SELECT product_id, available FROM stock WHERE product_id = ANY($1::text[])"
        " ORDER BY product_id FOR UPDATE",
        list(wanted),
    )
    short = short_products(wanted, {r["product_id"]: r["available"] for r in rows})
    if short:
        return short, 0
    for pid, q in wanted.items():
        await conn.execute(_TAKE, pid, q)
    return [], 0


async def optimistic(conn: asyncpg.Connection, wanted: dict[str, int]) -> tuple[list[str], int]:
    """Read without locks, then update only if each row's version is unchanged; else retry."""
    for attempt in range(OPTIMISTIC_ATTEMPTS):
        rows = await conn.fetch(
            "SELECT product_id, available, version FROM stock WHERE product_id = ANY($1::text[])",
            list(wanted),
        )
        short = short_products(wanted, {r["product_id"]: r["available"] for r in rows})
        if short:
            return short, attempt
        versions = {r["product_id"]: r["version"] for r in rows}
        if await _take_unchanged(conn, wanted, versions):
            return [], attempt
        # Someone changed a row since we read it: back off a little, with jitter, and retry.
        await asyncio.sleep(random.uniform(0, 0.002 * (attempt + 1)))
    raise StockContention(f"optimistic reservation lost {OPTIMISTIC_ATTEMPTS} times")


class _Changed(Exception):
    pass


async def _take_unchanged(
    conn: asyncpg.Connection, wanted: dict[str, int], versions: dict[str, int]
) -> bool:
    """Take every line if no row changed since it was read; a savepoint undoes a partial take."""
    try:
        async with conn.transaction():
            for pid, q in wanted.items():
                if (
                    await conn.fetchval(
                        _TAKE + " AND version = $3 RETURNING 1", pid, q, versions[pid]
                    )
                    is None
                ):
                    raise _Changed
        return True
    except _Changed:
        return False


STRATEGIES: dict[str, Strategy] = {
    "conditional": conditional,
    "pessimistic": pessimistic,
    "optimistic": optimistic,
}

_TAKE = (
    "UPDATE stock SET available = available - $2, reserved = reserved + $2,"
    " version = version + 1 WHERE product_id = $1"
)
