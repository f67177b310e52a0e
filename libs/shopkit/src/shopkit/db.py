"""Async engine and sessions, the naming convention every service's Base uses, the kit's metadata."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
from sqlalchemy import MetaData, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import QueuePool

from shopkit.faults import connection_lost
from shopkit.settings import ServiceSettings

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# The kit's own tables (outbox, inbox, idempotency keys) live in every service's database but
# belong to no service's models: each service has its own declarative Base and metadata.
kit_metadata = MetaData(naming_convention=NAMING)


@dataclass(frozen=True)
class Timeouts:
    """Bounds on every wait on the database, for each connection (see ServiceSettings.db_*)."""

    connect: float = 5.0
    command: float = 30.0
    keepalive: int = 10
    idle_in_transaction: float = 60.0

    @classmethod
    def of(cls, settings: ServiceSettings) -> "Timeouts":
        return cls(
            connect=settings.db_connect_timeout_s,
            command=settings.db_command_timeout_s,
            keepalive=settings.db_keepalive_s,
            idle_in_transaction=settings.db_idle_in_transaction_s,
        )

    def server_settings(self) -> dict[str, str]:
        """What the server enforces: asyncpg has no client-side keepalive, but the server's
        keepalives end a session whose client vanished (freeing its locks, the relay's advisory
        lock included), and a transaction left idle is ended too."""
        return {
            "tcp_keepalives_idle": str(self.keepalive),
            "tcp_keepalives_interval": str(self.keepalive),
            "tcp_keepalives_count": "3",
            "idle_in_transaction_session_timeout": str(int(self.idle_in_transaction * 1000)),
        }

    def connect_args(
        self, *, per_statement: bool = False, **server_settings: str
    ) -> dict[str, Any]:
        """asyncpg.connect's keyword arguments: a connection attempt is bounded, and with
        `per_statement` every statement too (asyncpg's `command_timeout`).

        The pools bound each use of a connection instead (`Database`): `command_timeout` arms
        a timer in every statement, BEGIN and COMMIT included; one per use costs a raw
        transaction ~2 us of CPU instead of ~5-8 (docs/performance.md)."""
        args: dict[str, Any] = {
            "timeout": self.connect,
            "server_settings": {**self.server_settings(), **server_settings},
        }
        if per_statement:
            args["command_timeout"] = self.command
        return args


class Database:
    """One engine and session factory per process, created in the app lifespan."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        max_overflow: int | None = None,
        raw_pool_size: int = 10,
        timeouts: Timeouts | None = None,
    ) -> None:
        self.url = url
        self.raw_pool_size = raw_pool_size
        self.pool_max = pool_size + (pool_size // 2 if max_overflow is None else max_overflow)
        self.timeouts = timeouts or Timeouts()
        self._raw_pool: asyncpg.Pool | None = None
        self._raw_lock = asyncio.Lock()
        self.engine: AsyncEngine = create_async_engine(
            # No pre-ping: it doubled the round trips of every transaction. A connection the
            # server closed is replaced at checkout without one (`_replace_if_closed`), and a
            # disconnect found by a statement makes SQLAlchemy invalidate the whole pool: every
            # connection opened before is replaced at its next checkout.
            url,
            pool_size=pool_size,
            max_overflow=self.pool_max - pool_size,
            pool_recycle=1800,
            connect_args=self.timeouts.connect_args(),
            # JSONB columns (outbox envelopes, saga state) are written on every step.
            json_serializer=json_text,
            json_deserializer=orjson.loads,
        )
        event.listen(self.engine.sync_engine, "checkout", self._lend)
        event.listen(self.engine.sync_engine, "checkin", _take_back)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    def _lend(self, dbapi_connection: Any, record: Any, proxy: Any) -> None:
        """A SQLAlchemy pool checkout.

        A pooled connection the server closed (a restart, an admin's terminate) is replaced
        here, with no round trip: asyncpg already knows it is closed. Without this, one reached
        through `driver()` failed every transaction it was lent to, and went back to the pool.
        A connection lent for longer than `timeouts.command` is terminated (see `Timeouts`)."""
        connection = dbapi_connection.driver_connection
        if connection.is_closed():
            raise DisconnectionError("the server closed this connection")
        loop = asyncio.get_running_loop()
        record.info[_CUT_OFF] = loop.call_later(self.timeouts.command, connection.terminate)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: commit on success, roll back on error."""
        async with self.sessions() as session, session.begin():
            try:
                yield session
            except BaseException as exc:
                # SQLAlchemy invalidates a connection that failed under it, but not one that
                # failed under `driver()`'s statements: drop that one here.
                if _DRIVER in session.info and connection_lost(exc):
                    await (await session.connection()).invalidate(exc)
                raise

    @asynccontextmanager
    async def raw_transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """A plain asyncpg connection inside one transaction: commit on success, roll back on
        error. For the hottest transactions (a saga step, a consumer's poll): measured here, a
        transaction of one statement costs ~0.2 ms of CPU this way against ~0.75 ms through a
        session (its pool checkout, session and greenlet hops), for no ORM on the way.

        The connections come from their own small pool (`raw_pool_size`), with the JSON codecs
        the engine uses: JSONB parameters as JSON text (`json_text`), results decoded. One that
        failed at the connection level is terminated, never pooled again (`_drop_if_lost`), and
        so is one still in use after `timeouts.command` (a half-open connection: no answer,
        ever), which fails what waits on it."""
        pool = self._raw_pool or await self._open_raw_pool()
        async with pool.acquire() as conn:
            cut_off = asyncio.get_running_loop().call_later(self.timeouts.command, conn.terminate)
            try:
                # On a connection gone, its ROLLBACK fails at once (asyncpg knows it is closed).
                async with conn.transaction():
                    yield conn
            except BaseException as exc:
                _drop_if_lost(conn, exc)
                raise
            finally:
                cut_off.cancel()

    async def _open_raw_pool(self) -> asyncpg.Pool:
        async with self._raw_lock:
            if self._raw_pool is None:
                self._raw_pool = await asyncpg.create_pool(
                    asyncpg_dsn(self.url),
                    min_size=0,
                    max_size=self.raw_pool_size,
                    init=_json_codecs,
                    # A released connection is clean: every use is one transaction that has
                    # ended (the default reset costs a round trip per use).
                    reset=_rollback_if_open,
                    **self.timeouts.connect_args(),
                )
        return self._raw_pool

    @asynccontextmanager
    async def autocommit(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled asyncpg connection outside any transaction: each statement stands alone.

        For a single read, or a write that is one statement: one round trip, where a session's
        transaction takes three (BEGIN, the statement, COMMIT or ROLLBACK). From the same pool
        as `raw_transaction`, with the same JSON codecs.
        """
        pool = self._raw_pool or await self._open_raw_pool()
        async with pool.acquire() as conn:
            cut_off = asyncio.get_running_loop().call_later(self.timeouts.command, conn.terminate)
            try:
                yield conn
            except BaseException as exc:
                _drop_if_lost(conn, exc)
                raise
            finally:
                cut_off.cancel()

    def pool_usage(self) -> dict[str, tuple[int, int]]:
        """(connections lent out, most it may hold) of the session pool and the raw one."""
        pool = self.engine.pool
        lent = pool.checkedout() if isinstance(pool, QueuePool) else 0
        raw = self._raw_pool
        raw_lent = raw.get_size() - raw.get_idle_size() if raw is not None else 0
        return {"session": (lent, self.pool_max), "raw": (raw_lent, self.raw_pool_size)}

    async def dispose(self) -> None:
        if self._raw_pool is not None:
            await self._raw_pool.close()
            self._raw_pool = None
        await self.engine.dispose()


def _take_back(dbapi_connection: Any, record: Any) -> None:
    cut_off = record.info.pop(_CUT_OFF, None)
    if cut_off is not None:
        cut_off.cancel()


_CUT_OFF = "shopkit.cut_off"


def _drop_if_lost(conn: asyncpg.Connection, exc: BaseException) -> None:
    """Terminate `conn` when `exc` failed it at the connection level, so it is never pooled
    again. asyncpg's pool replaces a connection it finds closed, but one whose statement timed
    out (half-open: the server vanished without a word) would go back to the pool, try a
    ROLLBACK on release and make its next user wait out the timeout again."""
    if connection_lost(exc):
        conn.terminate()


async def _json_codecs(conn: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name, schema="pg_catalog", encoder=str, decoder=orjson.loads, format="text"
        )


async def _rollback_if_open(conn: asyncpg.Connection) -> None:
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def driver(session: AsyncSession) -> asyncpg.Connection:
    """The session's own asyncpg connection, inside the session's transaction.

    For the statements that run several times per order: through SQLAlchemy a statement costs
    ~0.3-0.5 ms of CPU on our machine, straight through asyncpg ~0.1 ms. The transaction stays
    the session's: these statements commit or roll back with it. JSONB parameters are passed
    as JSON text (`json_text`), as SQLAlchemy's codec on the connection expects. The session's
    identity map does not see these writes: an ORM read of a row they may have changed must use
    `populate_existing=True`.
    """
    if session.new or session.dirty or session.deleted:
        await session.flush()  # ORM changes still pending must be visible to these statements
    # Remembered for the rest of the transaction (or savepoint: SQLAlchemy emits a SAVEPOINT
    # only when a connection is asked for inside it): reaching it through the session costs
    # more than many of the statements sent on it.
    transaction = _innermost(session)
    remembered = session.info.get(_DRIVER)
    if transaction is not None and remembered is not None and remembered[0] is transaction:
        return remembered[1]
    connection = await session.connection()
    adapted: Any = (await connection.get_raw_connection()).dbapi_connection
    # SQLAlchemy's adapter sends BEGIN lazily, with its first statement; make sure it has.
    if adapted._transaction is None and session.in_transaction():
        await adapted._start_transaction()
    session.info[_DRIVER] = (_innermost(session), adapted._connection)
    return adapted._connection


_DRIVER = "shopkit.driver"


def _innermost(session: AsyncSession) -> Any:
    sync = session.sync_session
    return sync.get_nested_transaction() or sync.get_transaction()


def json_text(value: object) -> str:
    """JSON for a JSONB column: the engine's serializer, and for `driver()` parameters."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def asyncpg_dsn(url: str) -> str:
    """The plain libpq form of a SQLAlchemy asyncpg URL, for raw asyncpg connections."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)
