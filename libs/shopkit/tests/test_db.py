"""`driver()`: raw asyncpg statements inside a session's transaction, against real PostgreSQL."""

import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import text

from shopkit.db import Database, Timeouts, driver, json_text
from shopkit.faults import is_transient
from shopkit.testing import _CREATED, Infra, unique_name


@pytest.fixture(scope="module")
async def db(infra: Infra) -> AsyncIterator[Database]:
    name = unique_name("kitdb")
    admin = await asyncpg.connect(infra.pg_admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    _CREATED.append((infra.pg_admin_url, name))
    await admin.close()
    database = Database(infra.database_url(name))
    async with database.transaction() as session:
        await session.execute(text("CREATE TABLE notes (id uuid PRIMARY KEY, body jsonb)"))
    yield database
    await database.dispose()


async def count(db: Database, note: uuid.UUID) -> int:
    async with db.sessions() as session:
        found = await session.execute(text("SELECT count(*) FROM notes WHERE id = :i"), {"i": note})
        return int(found.scalar_one())


async def test_a_first_statement_through_the_driver_rolls_back_with_the_session(
    db: Database,
) -> None:
    """Even as the transaction's very first statement it is inside BEGIN, not autocommitted."""
    note = uuid.uuid4()
    with pytest.raises(RuntimeError):
        async with db.transaction() as session:
            conn = await driver(session)
            await conn.execute("INSERT INTO notes VALUES ($1, $2)", note, json_text({"a": 1}))
            raise RuntimeError("the state change failed")
    assert await count(db, note) == 0


async def test_driver_and_session_statements_commit_together(db: Database) -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    async with db.transaction() as session:
        await session.execute(text("INSERT INTO notes VALUES (:i, '{}')"), {"i": first})
        conn = await driver(session)
        await conn.execute("INSERT INTO notes VALUES ($1, $2)", second, json_text({"k": [1, 2]}))
        # The session sees the driver's row: one connection, one transaction.
        seen = await session.execute(text("SELECT body FROM notes WHERE id = :i"), {"i": second})
        assert seen.scalar_one() == {"k": [1, 2]}
    assert await count(db, first) == 1 and await count(db, second) == 1


async def test_autocommit_runs_each_statement_on_its_own_and_decodes_jsonb(db: Database) -> None:
    note = uuid.uuid4()
    async with db.autocommit() as conn:
        await conn.execute("INSERT INTO notes VALUES ($1, $2)", note, json_text({"a": [1]}))
        assert not conn.is_in_transaction()  # no BEGIN was sent for it
        assert await count(db, note) == 1  # already committed, seen from another connection
        assert await conn.fetchval("SELECT body FROM notes WHERE id = $1", note) == {"a": [1]}


async def test_the_driver_is_remembered_within_a_transaction_and_not_beyond(db: Database) -> None:
    note = uuid.uuid4()
    async with db.sessions() as session:
        async with session.begin():
            first = await driver(session)
            assert await driver(session) is first
        # The same session's next transaction: its driver is inside that one's BEGIN.
        with pytest.raises(RuntimeError):
            async with session.begin():
                conn = await driver(session)
                assert conn.is_in_transaction()
                await conn.execute("INSERT INTO notes VALUES ($1, '{}')", note)
                raise RuntimeError("the state change failed")
    assert await count(db, note) == 0


async def test_a_driver_statement_in_a_savepoint_rolls_back_with_the_savepoint(
    db: Database,
) -> None:
    kept, undone = uuid.uuid4(), uuid.uuid4()
    async with db.transaction() as session:
        conn = await driver(session)
        await conn.execute("INSERT INTO notes VALUES ($1, '{}')", kept)
        nested = await session.begin_nested()
        await (await driver(session)).execute("INSERT INTO notes VALUES ($1, '{}')", undone)
        await nested.rollback()
        assert (
            await (await driver(session)).fetchval(
                "SELECT count(*) FROM notes WHERE id = $1", undone
            )
            == 0
        )
    assert (await count(db, kept), await count(db, undone)) == (1, 0)


async def test_a_raw_transaction_commits_or_rolls_back_and_speaks_json(db: Database) -> None:
    kept, undone = uuid.uuid4(), uuid.uuid4()
    async with db.raw_transaction() as conn:
        assert conn.is_in_transaction()
        await conn.execute("INSERT INTO notes VALUES ($1, $2)", kept, json_text({"a": [1]}))
        assert await conn.fetchval("SELECT body FROM notes WHERE id = $1", kept) == {"a": [1]}
    with pytest.raises(RuntimeError):
        async with db.raw_transaction() as conn:
            await conn.execute("INSERT INTO notes VALUES ($1, '{}')", undone)
            raise RuntimeError("the state change failed")
    assert (await count(db, kept), await count(db, undone)) == (1, 0)


async def test_a_connection_lent_past_its_timeout_is_cut_off_and_never_lent_again(
    db: Database,
) -> None:
    """What a half-open connection would do (no answer, ever) is bounded: the connection is
    terminated, what waited on it fails as transient, and the pools lend a new one."""
    short = Database(db.url, raw_pool_size=1, timeouts=Timeouts(command=0.3))
    try:
        async with short.autocommit() as conn:
            before = await conn.fetchval("SELECT pg_backend_pid()")
        started = time.monotonic()
        with pytest.raises(Exception) as raised:
            async with short.raw_transaction() as conn:
                await conn.execute("SELECT pg_sleep(5)")
        assert time.monotonic() - started < 2
        assert is_transient(raised.value), repr(raised.value)
        async with short.autocommit() as conn:
            assert await conn.fetchval("SELECT pg_backend_pid()") != before
        started = time.monotonic()
        with pytest.raises(Exception) as raised:
            async with short.transaction() as session:
                await session.execute(text("SELECT pg_sleep(5)"))
        assert time.monotonic() - started < 2
        assert is_transient(raised.value), repr(raised.value)
        async with short.transaction() as session:  # the session's pool lends a new one
            assert (await session.execute(text("SELECT 1"))).scalar_one() == 1
    finally:
        await short.dispose()


async def test_every_connection_asks_the_server_to_watch_for_a_vanished_client(
    db: Database,
) -> None:
    async with db.autocommit() as conn:
        idle = await conn.fetchval("SHOW idle_in_transaction_session_timeout")
        keepalive = await conn.fetchval("SHOW tcp_keepalives_idle")
    async with db.transaction() as session:
        through_orm = (await session.execute(text("SHOW tcp_keepalives_count"))).scalar_one()
    assert (idle, keepalive, through_orm) == ("1min", "10", "3")
