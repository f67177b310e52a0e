"""`coupon_bench.py --compare-locking`: places taken on one hot row four ways, straight on
PostgreSQL, to compare the service's batched FOR UPDATE with the usual alternatives."""

import asyncio
import time
import uuid
from collections import Counter
from typing import Any

import asyncpg

LOCKING_SCHEMA = """
CREATE TABLE line (id int PRIMARY KEY, accepted int NOT NULL, capacity int NOT NULL,
                   version int NOT NULL DEFAULT 0, CHECK (accepted <= capacity));
CREATE TABLE place (user_id text PRIMARY KEY, position int);
"""


async def compare_locking(pg_admin_url: str, requests: int, connections: int) -> None:
    """Take `requests` places on one hot row from `connections` connections, four ways."""
    name = f"bench_locking_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(pg_admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = pg_admin_url.rsplit("/", 1)[0] + f"/{name}"
    pool = await asyncpg.create_pool(dsn, min_size=connections, max_size=connections)
    assert pool is not None
    try:
        await pool.execute(LOCKING_SCHEMA)

        async def conditional(user: str) -> bool:
            async with pool.acquire() as c, c.transaction():
                await c.execute("INSERT INTO place (user_id) VALUES ($1)", user)
                taken = await c.fetchval(
                    "UPDATE line SET accepted = accepted + 1"
                    " WHERE id = 1 AND accepted < capacity RETURNING accepted"
                )
                if taken is None:
                    raise LookupError
                return True

        async def pessimistic(user: str) -> bool:
            async with pool.acquire() as c, c.transaction():
                row = await c.fetchrow(
                    "SELECT accepted, capacity FROM line WHERE id = 1 FOR UPDATE"
                )
                if row["accepted"] >= row["capacity"]:
                    return False
                await c.execute("INSERT INTO place VALUES ($1, $2)", user, row["accepted"] + 1)
                await c.execute("UPDATE line SET accepted = accepted + 1 WHERE id = 1")
                return True

        retries = Counter[str]()

        async def optimistic(user: str) -> bool:
            while True:
                async with pool.acquire() as c, c.transaction():
                    row = await c.fetchrow(
                        "SELECT accepted, capacity, version FROM line WHERE id = 1"
                    )
                    if row["accepted"] >= row["capacity"]:
                        return False
                    won = await c.fetchval(
                        "UPDATE line SET accepted = accepted + 1, version = version + 1"
                        " WHERE id = 1 AND version = $1 RETURNING accepted",
                        row["version"],
                    )
                    if won is not None:
                        await c.execute("INSERT INTO place VALUES ($1, $2)", user, won)
                        return True
                retries["optimistic"] += 1

        waiting: list[tuple[str, asyncio.Future[bool]]] = []

        async def drain() -> None:
            while waiting:
                batch, waiting[:] = list(waiting), []
                async with pool.acquire() as c, c.transaction():
                    row = await c.fetchrow(
                        "SELECT accepted, capacity FROM line WHERE id = 1 FOR UPDATE"
                    )
                    placed = batch[: row["capacity"] - row["accepted"]]
                    await c.executemany(
                        "INSERT INTO place VALUES ($1, $2)",
                        [(u, row["accepted"] + 1 + i) for i, (u, _) in enumerate(placed)],
                    )
                    await c.execute(
                        "UPDATE line SET accepted = accepted + $1 WHERE id = 1", len(placed)
                    )
                for i, (_, answer) in enumerate(batch):
                    answer.set_result(i < len(placed))

        drainer: list[asyncio.Task[None]] = []

        async def batched(user: str) -> bool:
            answer = asyncio.get_running_loop().create_future()
            waiting.append((user, answer))
            if not drainer or drainer[0].done():
                drainer[:] = [asyncio.create_task(drain())]
            return await answer

        print(f"\n  {requests:,} places taken on one row by {connections} connections\n")
        for label, take in (
            ("conditional UPDATE per request", conditional),
            ("SELECT ... FOR UPDATE per request", pessimistic),
            ("optimistic version column, retry", optimistic),
            ("FOR UPDATE per batch (the service)", batched),
        ):
            await pool.execute(
                "TRUNCATE place; DELETE FROM line;"
                f" INSERT INTO line (id, accepted, capacity) VALUES (1, 0, {requests})"
            )
            gate = asyncio.Semaphore(connections)

            async def one(user: str, take: Any = take, gate: asyncio.Semaphore = gate) -> bool:
                async with gate:
                    return bool(await take(user))

            began = time.perf_counter()
            done = await asyncio.gather(*[one(f"u{i}") for i in range(requests)])
            elapsed = time.perf_counter() - began
            taken = await pool.fetchval("SELECT accepted FROM line WHERE id = 1")
            extra = f", {retries['optimistic']:,} retries" if label.startswith("optimistic") else ""
            print(
                f"  {label:<36} {requests / elapsed:>8,.0f} places/s"
                f"  ({sum(done):,} placed, line at {taken:,}{extra})"
            )
    finally:
        await pool.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
