"""The database: one asyncpg pool per process, the one transaction type, the naming convention
every service's Base uses, the kit's metadata."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeAlias

import asyncpg
import orjson
from sqlalchemy import MetaData

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

        The pool bounds each use of a connection instead (`Database`): `command_timeout` arms
        a timer in every statement, BEGIN and COMMIT included (docs/performance.md)."""
        args: dict[str, Any] = {
            "timeout": self.connect,
            "server_settings": {**self.server_settings(), **server_settings},
        }
        if per_statement:
            args["command_timeout"] = self.command
        return args


Transaction: TypeAlias = asyncpg.Connection
"""The one transaction type: a pooled asyncpg connection inside BEGIN..COMMIT (see
`Database.transaction`)."""


class Database:
    """One asyncpg pool per process, created in the app lifespan.

    Every connection has the JSON codecs: JSONB parameters are passed as JSON text
    (`json_text`), JSON results come back decoded. One that failed at the connection level is
    terminated, never pooled again (`_drop_if_lost`), and so is one still lent out after
    `timeouts.command` (a half-open connection: no answer, ever), which fails what waits on it.
    """

    def __init__(self, url: str, *, pool_size: int = 20, timeouts: Timeouts | None = None) -> None:
        self.url = url
        self.pool_size = pool_size
        self.timeouts = timeouts or Timeouts()
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """A pooled connection inside one transaction: commit on success, roll back on error."""
        pool = self._pool or await self._open_pool()
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

    @asynccontextmanager
    async def autocommit(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection outside any transaction: each statement stands alone.

        For a single read, or a write that is one statement: one round trip, where a
        transaction takes three (BEGIN, the statement, COMMIT or ROLLBACK)."""
        pool = self._pool or await self._open_pool()
        async with pool.acquire() as conn:
            cut_off = asyncio.get_running_loop().call_later(self.timeouts.command, conn.terminate)
            try:
                yield conn
            except BaseException as exc:
                _drop_if_lost(conn, exc)
                raise
            finally:
                cut_off.cancel()

    async def _open_pool(self) -> asyncpg.Pool:
        async with self._opening:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    asyncpg_dsn(self.url),
                    min_size=0,
                    max_size=self.pool_size,
                    init=_json_codecs,
                    # A released connection is clean: every use is one transaction that has
                    # ended, or statements outside one (the default reset costs a round trip).
                    reset=_rollback_if_open,
                    **self.timeouts.connect_args(),
                )
        return self._pool

    def pool_usage(self) -> tuple[int, int]:
        """(connections lent out, most the pool may hold)."""
        pool = self._pool
        lent = pool.get_size() - pool.get_idle_size() if pool is not None else 0
        return lent, self.pool_size

    async def dispose(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


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


def json_text(value: object) -> str:
    """A JSONB parameter: the pool's codecs take JSON as text."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def asyncpg_dsn(url: str) -> str:
    """The plain libpq form of a SQLAlchemy asyncpg URL (the form settings and alembic use)."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)
