"""The locking strategies the catalog benchmark compares keep the service's guarantees: never
oversell, all or nothing, no deadlock between orders sharing products."""

import asyncio
import importlib.util
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest

from shopdev.testing import Infra, create_database, unique_name
from shopkit.db import Database

ROOT = Path(__file__).resolve().parents[2]


def _strategies() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "stock_strategies", ROOT / "bench" / "stock_strategies.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


strategies = _strategies()


@pytest.fixture(scope="module")
async def db(infra: Infra) -> AsyncIterator[Database]:
    url = await create_database(infra, ROOT / "services" / "catalog", unique_name("catalog_bench"))
    database = Database(url, pool_size=10)
    yield database
    await database.dispose()


async def product(db: Database, available: int) -> str:
    pid = str(uuid.uuid4())
    async with db.transaction() as tx:
        await tx.execute(
            "INSERT INTO products (id, name, category, price, description, created_at, updated_at)"
            " VALUES ($1, 'bench', 'BOOKS', 1000, '', $2, $2)",
            pid,
            datetime.now(UTC),
        )
        await tx.execute(
            "INSERT INTO stock (product_id, available, reserved, sold, version)"
            " VALUES ($1, $2, 0, 0, 0)",
            pid,
            available,
        )
    return pid


async def quantities(db: Database, pid: str) -> tuple[int, int]:
    async with db.autocommit() as conn:
        row = await conn.fetchrow(
            "SELECT available, reserved FROM stock WHERE product_id = $1", pid
        )
    return row["available"], row["reserved"]


async def take(db: Database, strategy: str, wanted: dict[str, int]) -> list[str]:
    async with db.transaction() as tx:
        short, _ = await strategies.STRATEGIES[strategy](tx, wanted)
        return list(short)


@pytest.mark.parametrize("strategy", ["conditional", "pessimistic", "optimistic"])
async def test_every_strategy_never_oversells(db: Database, strategy: str) -> None:
    pid = await product(db, available=10)

    shorts = await asyncio.gather(*[take(db, strategy, {pid: 1}) for _ in range(50)])

    assert sum(1 for short in shorts if not short) == 10
    assert {tuple(short) for short in shorts if short} == {(pid,)}
    assert await quantities(db, pid) == (0, 10)


@pytest.mark.parametrize("strategy", ["conditional", "pessimistic"])
async def test_orders_sharing_products_never_deadlock(db: Database, strategy: str) -> None:
    a, b = await product(db, available=10), await product(db, available=10)
    # Lines are taken in product-id order, as the service merges them.
    wanted = dict(sorted({a: 1, b: 1}.items()))

    shorts = await asyncio.gather(*[take(db, strategy, wanted) for _ in range(40)])

    assert sum(1 for short in shorts if not short) == 10
    assert await quantities(db, a) == await quantities(db, b) == (0, 10)
