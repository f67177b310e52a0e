"""Which failures are transient (wait them out) and which are the message's or the code's own.

A transient failure is the database or the broker being away or busy for a moment: the same work
succeeds once it answers again, so it is retried with backoff and never dead-lettered. Anything
else fails the same way on every attempt (bad data, a bug) and is bounded.

Classifying costs nothing on the hot path: it runs only once something has already failed.
"""

import asyncio
import errno
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
from aiokafka import errors as kafka_errors

from shopkit.settings import ServiceSettings

log = logging.getLogger("shopkit.faults")

T = TypeVar("T")

# SQLSTATE classes and codes that say "try again later", not "this is wrong":
# 08 connection exception, 53 insufficient resources (too many clients), 57P admin/crash
# shutdown and "cannot connect now", 40001 serialization failure, 40P01 deadlock,
# 55P03 lock not available, 57014 statement timeout (query_canceled).
_TRANSIENT_CLASSES = ("08", "53", "57P")
_TRANSIENT_STATES = frozenset({"40001", "40P01", "55P03", "57014"})
# A database closed to new connections (ALTER DATABASE ... ALLOW_CONNECTIONS false, as during a
# restore) answers 55000, a state that otherwise means a bug (currval before nextval, say).
_NOT_ACCEPTING = "not currently accepting connections"
# Broker errors aiokafka does not mark retriable that still only say "the broker is away or
# lost track of us": the same send or poll works against a healthy cluster.
_KAFKA_OUTAGE = (
    kafka_errors.KafkaTimeoutError,
    kafka_errors.KafkaUnavailableError,
    kafka_errors.BrokerNotAvailableError,
    kafka_errors.ReplicaNotAvailableError,
    kafka_errors.RebalanceInProgressError,
    kafka_errors.CommitFailedError,
    kafka_errors.ProducerClosed,
    kafka_errors.OutOfOrderSequenceNumber,
    kafka_errors.UnknownProducerId,
)


class StillUnavailable(Exception):
    """A dependency stayed away longer than one wait may last; the caller hands the work back
    (a consumer's poll is sought back and polled again) and it is tried again later."""


def is_transient(exc: BaseException) -> bool:
    """True when `exc` (or what caused it) says a dependency is away or busy, not that the work
    itself is wrong."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _transient_itself(current):
            return True
        # As a traceback shows it: the cause, else the context unless `from None` hid it.
        if current.__cause__ is not None or current.__suppress_context__:
            current = current.__cause__
        else:
            current = current.__context__
    return False


def _network(exc: BaseException) -> bool:
    """Refused, reset, unreachable, no answer in time (TimeoutError is an OSError), a name that
    did not resolve; not a missing file or a permission, which are OSErrors too."""
    if isinstance(exc, (ConnectionError, TimeoutError, socket.gaierror)):
        return True
    if isinstance(exc, OSError):
        # asyncpg's "Multiple exceptions" (every address of a host failed) carries no errno.
        return exc.errno in _NETWORK_ERRNOS or (type(exc) is OSError and exc.errno is None)
    return False


_NETWORK_ERRNOS = frozenset(
    {errno.ENETDOWN, errno.ENETUNREACH, errno.EHOSTDOWN, errno.EHOSTUNREACH, errno.ETIMEDOUT}
)


def connection_lost(exc: BaseException) -> bool:
    """True when `exc` says the connection it came from cannot be trusted again (closed,
    reset, timed out mid-statement, or the server is shutting it down): drop it, do not pool it.
    A serialization failure or a deadlock leaves a healthy connection and is not one of these."""
    if _network(exc) or _stuck(exc):  # TimeoutError too: a statement cut short leaves it unknown
        return True
    if isinstance(exc, asyncpg.InterfaceError):
        return "connection is closed" in str(exc)
    if isinstance(exc, asyncpg.PostgresError):
        state = getattr(exc, "sqlstate", None) or ""
        return state.startswith(("08", "57P"))
    return False


def _stuck(exc: BaseException) -> bool:
    """A pooled connection whose protocol is still taken by an error the server sent while it
    sat idle (its FATAL when a backend is terminated): asyncpg refuses the next statement
    before it learns the socket is gone."""
    return isinstance(exc, asyncpg.InternalClientError) and "cannot switch to state" in str(exc)


def _transient_itself(exc: BaseException) -> bool:
    if isinstance(exc, StillUnavailable):
        return True
    if _network(exc) or _stuck(exc):
        return True
    if isinstance(exc, kafka_errors.KafkaError):
        # The bare class is what aiokafka raises when no broker answers a metadata request.
        return (
            exc.retriable or type(exc) is kafka_errors.KafkaError or isinstance(exc, _KAFKA_OUTAGE)
        )
    if isinstance(exc, asyncpg.InterfaceError):
        # "connection is closed"; not a bad argument or a misuse, which are InterfaceErrors too
        return "connection is closed" in str(exc)
    if isinstance(exc, asyncpg.PostgresError):
        state = getattr(exc, "sqlstate", None) or ""
        if state == "55000":
            return _NOT_ACCEPTING in str(exc)
        return state in _TRANSIENT_STATES or state.startswith(_TRANSIENT_CLASSES)
    return False


@dataclass(frozen=True)
class Patience:
    """How long one piece of work (a consumer's poll) waits out transient failures.

    Each wait follows capped exponential backoff (`first`, doubling, at most `longest`); past
    `until` (a `time.monotonic()` instant) it raises `StillUnavailable` instead, so the work is
    handed back and tried again later from the start, however long the outage lasts.
    """

    until: float
    first: float = 0.1
    longest: float = 5.0
    # True once the work's owner is shutting down: a wait then ends at once (StillUnavailable),
    # so stopping a service never waits for its database to come back.
    stopping: Callable[[], bool] | None = None

    @classmethod
    def of(
        cls,
        budget: float,
        *,
        first: float = 0.1,
        longest: float = 5.0,
        stopping: Callable[[], bool] | None = None,
    ) -> "Patience":
        return cls(time.monotonic() + budget, first, longest, stopping)

    @classmethod
    def for_poll(
        cls, settings: ServiceSettings, stopping: Callable[[], bool] | None = None
    ) -> "Patience":
        """How a consumer's poll waits (see ServiceSettings.consumer_retry_* and _repoll_*)."""
        return cls.of(
            settings.consumer_repoll_after_s,
            first=settings.consumer_retry_first_s,
            longest=settings.consumer_retry_max_s,
            stopping=stopping,
        )

    async def wait(self, exc: BaseException, waited: int, **context: Any) -> None:
        """Wait before try number `waited` + 2 after the transient failure `exc`."""
        delay = min(self.first * 2**waited, self.longest)
        if time.monotonic() + delay > self.until:
            log.warning(
                "dependency still unavailable; handing the work back to be tried again",
                extra={"fields": {**context, "error": repr(exc)}},
            )
            raise StillUnavailable(f"still unavailable: {exc!r}") from exc
        log.warning(
            "dependency unavailable; waiting",
            extra={"fields": {**context, "error": repr(exc), "wait_s": delay}},
        )
        end = time.monotonic() + delay
        while (left := end - time.monotonic()) > 0:
            if self.stopping is not None and self.stopping():
                raise StillUnavailable(f"stopping while unavailable: {exc!r}") from exc
            await asyncio.sleep(min(left, 0.2))

    async def until_done(self, work: Callable[[], Awaitable[T]], **context: Any) -> T:
        """`work()` again and again while it fails transiently; any other failure is raised."""
        waited = 0
        while True:
            try:
                return await work()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                await self.wait(exc, waited, **context)
                waited += 1


@dataclass(frozen=True)
class Failed:
    """Work that failed the same non-transient way on every attempt: dead-letter it."""

    error: Exception
    attempts: int


async def bounded(
    work: Callable[[], Awaitable[T]],
    *,
    attempts: int,
    patience: Patience,
    **context: Any,
) -> T | Failed:
    """`work()` until it succeeds: transient failures are waited out (`patience`) and do not
    count; after `attempts` other failures in a row, the last one is returned, not raised."""
    failures = waited = 0
    while True:
        try:
            return await work()
        except Exception as exc:
            if is_transient(exc):
                # The attempts before it may have failed for the same outage: count afresh.
                failures = 0
                await patience.wait(exc, waited, **context)
                waited += 1
                continue
            failures += 1
            log.warning(
                "attempt failed",
                extra={"fields": {**context, "attempt": failures, "error": repr(exc)}},
            )
            if failures >= attempts:
                return Failed(exc, failures)
            await asyncio.sleep(min(0.05 * 2**failures, 2.0))
