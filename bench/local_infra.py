"""This machine's PostgreSQL and free ports, as the benchmarks that start services find them."""

import os
from typing import Any

import asyncpg


def pg_admin_url() -> str:
    """SHOP_TEST_PG_ADMIN_URL, else the local stack's PostgreSQL (SHOP_PG_*)."""
    if url := os.environ.get("SHOP_TEST_PG_ADMIN_URL"):
        return url
    user = os.environ.get("SHOP_PG_USER", "postgres")
    password = os.environ.get("SHOP_PG_PASSWORD", "postgres")
    return f"postgresql://{user}:{password}@127.0.0.1:{os.environ.get('SHOP_PG_PORT', '5432')}/postgres"


async def admin_execute(admin_url: str, statement: str) -> None:
    """One statement as the server's admin (CREATE or DROP DATABASE), on a connection of its own."""
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def fetch_row(database_url: str, query: str, *args: Any) -> dict[str, Any]:
    """One row of `query` as a dict ({} when there is none), on a connection of its own to the
    database of a SQLAlchemy asyncpg URL."""
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        row = await conn.fetchrow(query, *args)
        return dict(row) if row else {}
    finally:
        await conn.close()
