"""Which failures are transient (wait them out) and which are the message's or the code's own.

A transient failure is the database or the broker being away or busy for a moment: the same work
succeeds once it answers again, so it is retried with backoff and never dead-lettered. Anything
else fails the same way on every attempt (bad data, a bug) and is bounded.
"""

import asyncio

import asyncpg
from aiokafka.errors import KafkaError
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

# SQLSTATE classes and codes that say "try again later", not "this is wrong":
# 08 connection exception, 53 insufficient resources (too many clients), 57P admin/crash
# shutdown and "cannot connect now", 40001 serialization failure, 40P01 deadlock,
# 55P03 lock not available, 57014 statement timeout (query_canceled).
_TRANSIENT_CLASSES = ("08", "53", "57P")
_TRANSIENT_STATES = frozenset({"40001", "40P01", "55P03", "57014"})


def is_transient(exc: BaseException) -> bool:
    """True when `exc` (or what caused it) says a dependency is away or busy, not that the work
    itself is wrong."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _transient_itself(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def _transient_itself(exc: BaseException) -> bool:
    if isinstance(exc, (OSError, TimeoutError, asyncio.TimeoutError, PoolTimeout)):
        return True  # refused, reset, unreachable, or no answer in time
    if isinstance(exc, KafkaError):
        return True
    if isinstance(exc, (asyncpg.InterfaceError, asyncpg.exceptions.ConnectionDoesNotExistError)):
        return True  # "connection is closed", "connection was closed in the middle of operation"
    if isinstance(exc, asyncpg.PostgresError):
        state = getattr(exc, "sqlstate", None) or ""
        return state in _TRANSIENT_STATES or state.startswith(_TRANSIENT_CLASSES)
    if isinstance(exc, (DisconnectionError, InterfaceError, OperationalError)):
        return True
    if isinstance(exc, DBAPIError):
        return bool(exc.connection_invalidated)
    return False
