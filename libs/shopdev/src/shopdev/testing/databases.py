"""PostgreSQL for tests: fresh databases (a service's, migrated, or the kit's tables), a database
that is away for a while, and dropping everything a session made."""

import asyncio
import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from shopdev.testing.infra import Infra
from shopdev.testing.kafka import _NAMESPACES, _delete_namespaces
from shopdev.testing.services import poll

# dead_letters, idempotency, inbox and outbox each define one of kit_metadata's tables.
from shopkit import dead_letters, idempotency, inbox, outbox  # noqa: F401
from shopkit.db import Database, kit_metadata

# Databases made by this test session, dropped when it ends (see drop_test_databases).
_CREATED: list[tuple[str, str]] = []  # (admin url, database name)


@pytest.fixture(scope="session", autouse=True)
def drop_test_databases() -> Iterator[None]:
    """Drop every database and Kafka namespace this session created, so a developer's servers
    do not fill up (thousands of leftover partitions slow a broker's start to minutes)."""
    yield
    if _NAMESPACES:
        asyncio.run(_delete_namespaces())

    async def drop() -> None:
        for admin_url, name in _CREATED:
            conn = await asyncpg.connect(admin_url)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                try:  # create_database's role; cleanup must never fail a green run
                    await conn.execute(f'DROP ROLE IF EXISTS "{name}"')
                except asyncpg.PostgresError as exc:
                    print(f"[shopdev.testing] could not drop role {name}: {exc!r}")
            finally:
                await conn.close()

    if _CREATED and os.environ.get("SHOP_TEST_KEEP_DATABASES") != "1":
        asyncio.run(drop())


@asynccontextmanager
async def kit_database(infra: Infra, prefix: str, *ddl: str) -> AsyncIterator[Database]:
    """A fresh database with the kit's tables and `ddl` (a test's own tables), for tests of the
    kit itself; dropped with the others at the session's end."""
    name = unique_name(prefix)
    admin = await asyncpg.connect(infra.pg_admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    _CREATED.append((infra.pg_admin_url, name))
    url = infra.database_url(name)
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(kit_metadata.create_all)
            for statement in ddl:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()
    database = Database(url)
    try:
        yield database
    finally:
        await database.dispose()


async def create_database(infra: Infra, service_dir: Path, name: str) -> str:
    """A fresh database named `name`, owned by a fresh login role of the same name (no other
    rights, as in the local stack), with the service's migrations applied as that role; the
    role's asyncpg URL."""
    _CREATED.append((infra.pg_admin_url, name))
    password = secrets.token_hex(16)
    conn = await asyncpg.connect(infra.pg_admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'DROP ROLE IF EXISTS "{name}"')
        await conn.execute(
            f"CREATE ROLE \"{name}\" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '{password}'"
        )
        await conn.execute(f'CREATE DATABASE "{name}" OWNER "{name}"')
        await conn.execute(f'REVOKE ALL ON DATABASE "{name}" FROM PUBLIC')
        await conn.execute(f'GRANT CONNECT, TEMPORARY ON DATABASE "{name}" TO "{name}"')
    finally:
        await conn.close()
    # PostgreSQL 15+ gives public to the database owner already; older servers need this.
    conn = await asyncpg.connect(infra.database_url(name, driver="postgresql"))
    try:
        await conn.execute(f'ALTER SCHEMA public OWNER TO "{name}"')
        await conn.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
    finally:
        await conn.close()
    url = infra.database_url(name, role=(name, password))
    env = {**os.environ, "SHOP_DATABASE_URL": url}
    alembic = Path(sys.executable).parent / "alembic"
    result = await asyncio.to_thread(
        subprocess.run,
        [str(alembic), "upgrade", "head"],
        cwd=service_dir,
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"migrations failed for {service_dir.name}:\n{result.stderr}")
    return url


def unique_name(service: str) -> str:
    return f"t_{uuid.uuid4().hex[:10]}_{service.replace('-', '_')}"


@asynccontextmanager
async def database_refusing(admin_url: str, database_url: str) -> AsyncIterator[None]:
    """For the block, the database of `database_url` is away for real, as during a restart but
    without touching the server others share: it refuses new connections (ALLOW_CONNECTIONS
    false) and every open one is terminated, again and again until the block ends."""
    name = database_url.rsplit("/", 1)[1].split("?", 1)[0]
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')

    async def terminate() -> None:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )

    async def keep_terminating() -> None:
        while True:
            await asyncio.sleep(0.2)
            await terminate()

    await terminate()
    # Gone for real (a terminated backend exits a moment after the signal) before the block runs.
    await poll(
        lambda: admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE datname = $1", name),
        until=lambda n: n == 0,
        timeout=5,
        interval=0.02,
        message=f"connections to {name} terminated",
    )
    terminating = asyncio.create_task(keep_terminating())
    try:
        yield
    finally:
        terminating.cancel()
        await asyncio.gather(terminating, return_exceptions=True)
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()
