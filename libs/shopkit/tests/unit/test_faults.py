"""Transient or not: what the consumer waits out, what it bounds, and how long it waits."""

import asyncio
import time

import asyncpg
import pytest
from aiokafka import errors as kafka_errors

from shopkit.faults import (
    Failed,
    Patience,
    StillUnavailable,
    bounded,
    connection_lost,
    is_transient,
)


def postgres(cls: type[asyncpg.PostgresError], message: str = "") -> asyncpg.PostgresError:
    return cls(message)


TRANSIENT = {
    "connection refused": ConnectionRefusedError(111, "Connect call failed"),
    "connection reset": ConnectionResetError(),
    "no answer in time": TimeoutError(),
    "every address of the host failed": OSError("Multiple exceptions: [Errno 111] ..."),
    "network unreachable": OSError(101, "Network is unreachable"),
    "closed in the middle of an operation": asyncpg.exceptions.ConnectionDoesNotExistError(
        "connection was closed in the middle of operation"
    ),
    "connection is closed": asyncpg.InterfaceError(
        "cannot call Connection.fetch(): connection is closed"
    ),
    "admin shutdown": postgres(asyncpg.exceptions.AdminShutdownError),
    "a connection stuck on the server's goodbye": asyncpg.InternalClientError(
        "cannot switch to state 12; another operation (2) is in progress"
    ),
    "cannot connect now": postgres(asyncpg.exceptions.CannotConnectNowError),
    "too many clients": postgres(asyncpg.exceptions.TooManyConnectionsError),
    "serialization failure": postgres(asyncpg.exceptions.SerializationError),
    "deadlock": postgres(asyncpg.exceptions.DeadlockDetectedError),
    "lock timeout": postgres(asyncpg.exceptions.LockNotAvailableError),
    "statement timeout": postgres(asyncpg.exceptions.QueryCanceledError),
    "database closed to connections": postgres(
        asyncpg.exceptions.ObjectNotInPrerequisiteStateError,
        'database "shop" is not currently accepting connections',
    ),
    "broker unreachable": kafka_errors.KafkaConnectionError(),
    "no broker answers metadata": kafka_errors.KafkaError("Unable to get cluster metadata"),
    "broker did not answer in time": kafka_errors.KafkaTimeoutError(),
    "idempotent producer out of sequence": kafka_errors.OutOfOrderSequenceNumber(),
    "a poll handed back": StillUnavailable("still unavailable"),
}

POISON = {
    "a handler bug": ValueError("cannot handle this one"),
    "a missing key": KeyError("product_id"),
    "unique violation": postgres(asyncpg.exceptions.UniqueViolationError),
    "value too long": postgres(asyncpg.exceptions.StringDataRightTruncationError),
    "a bad argument": asyncpg.exceptions.DataError("invalid input for query argument $1"),
    "a wrong argument count": asyncpg.InterfaceError(
        "the server expects 2 arguments, 1 was passed"
    ),
    "currval before nextval": postgres(
        asyncpg.exceptions.ObjectNotInPrerequisiteStateError,
        'currval of sequence "s" is not yet defined in this session',
    ),
    "a record too large for the broker": kafka_errors.MessageSizeTooLargeError(),
    "a missing file": FileNotFoundError(2, "No such file or directory"),
}


@pytest.mark.parametrize("name", TRANSIENT)
def test_a_dependency_away_or_busy_is_transient(name: str) -> None:
    assert is_transient(TRANSIENT[name])


@pytest.mark.parametrize("name", POISON)
def test_what_fails_the_same_way_every_time_is_not_transient(name: str) -> None:
    assert not is_transient(POISON[name])


class Wrapped(Exception):
    """What a layer on the way up raises from the driver's error."""


def test_the_cause_decides_through_a_wrapping() -> None:
    """A layer raises its own error from the driver's: the chain is followed."""
    for cause, transient in (
        (asyncpg.exceptions.AdminShutdownError("terminating connection"), True),
        (asyncpg.exceptions.UniqueViolationError("duplicate key"), False),
    ):
        try:
            try:
                raise cause
            except asyncpg.PostgresError as exc:
                raise Wrapped("SELECT 1") from exc
        except Wrapped as wrapped:
            assert is_transient(wrapped) is transient


def test_the_chain_is_followed_as_a_traceback_shows_it() -> None:
    try:
        try:
            raise ConnectionResetError()
        except OSError:
            raise RuntimeError("could not load the saga") from None
    except RuntimeError as exc:
        assert not is_transient(exc)  # `from None` cuts the chain: a decision of the code
    try:
        try:
            raise ConnectionResetError()
        except OSError:
            raise RuntimeError("could not load the saga")  # noqa: B904
    except RuntimeError as exc:
        assert is_transient(exc)


def test_only_a_connection_level_failure_drops_the_connection() -> None:
    assert connection_lost(TimeoutError())
    assert connection_lost(ConnectionResetError())
    assert connection_lost(asyncpg.exceptions.AdminShutdownError())
    assert connection_lost(asyncpg.InterfaceError("connection is closed"))
    assert connection_lost(asyncpg.InternalClientError("cannot switch to state 12; another (2)"))
    # The connection is healthy after these: keep it pooled.
    assert not connection_lost(asyncpg.exceptions.SerializationError())
    assert not connection_lost(asyncpg.exceptions.DeadlockDetectedError())
    assert not connection_lost(asyncpg.exceptions.DataError("invalid input"))
    assert not connection_lost(ValueError())
    assert not connection_lost(asyncpg.InternalClientError("released a free connection"))


async def test_transient_failures_are_waited_out_with_capped_doubling_waits() -> None:
    patience = Patience.of(60, first=0.01, longest=0.04)
    failures = [ConnectionRefusedError()] * 5
    started = time.monotonic()

    async def work() -> str:
        if failures:
            raise failures.pop()
        return "done"

    assert await patience.until_done(work) == "done"
    # 0.01 + 0.02 + 0.04 + 0.04 + 0.04: doubled, then capped
    assert 0.15 <= time.monotonic() - started < 1.0


async def test_a_wait_past_the_budget_hands_the_work_back() -> None:
    patience = Patience.of(0.05, first=0.02, longest=0.02)

    async def away() -> None:
        raise ConnectionRefusedError()

    with pytest.raises(StillUnavailable) as raised:
        await patience.until_done(away)
    assert isinstance(raised.value.__cause__, ConnectionRefusedError)
    assert is_transient(raised.value)


async def test_a_non_transient_failure_is_not_waited_on() -> None:
    async def bug() -> None:
        raise ValueError("bug")

    with pytest.raises(ValueError):
        await Patience.of(60).until_done(bug)


async def test_bounded_gives_up_only_on_the_same_non_transient_failure() -> None:
    outcomes: list[BaseException] = [
        ValueError("bug"),
        ConnectionResetError(),  # an outage between attempts: the count starts again
        ValueError("bug"),
        ValueError("bug"),
        ValueError("bug"),
    ]
    tries = 0

    async def work() -> None:
        nonlocal tries
        tries += 1
        raise outcomes.pop(0)

    outcome = await bounded(work, attempts=3, patience=Patience.of(60, first=0.001))
    assert isinstance(outcome, Failed)
    assert (outcome.attempts, tries) == (3, 5)
    assert str(outcome.error) == "bug"


async def test_bounded_never_gives_up_on_an_outage_however_many_times_it_fails() -> None:
    left = 50

    async def work() -> str:
        nonlocal left
        left -= 1
        if left:
            raise asyncpg.exceptions.CannotConnectNowError("the database system is starting up")
        return "applied"

    patience = Patience.of(60, first=0.0001, longest=0.0001)
    assert await bounded(work, attempts=2, patience=patience) == "applied"


async def test_a_cancelled_wait_is_not_swallowed() -> None:
    tried = asyncio.Event()

    async def away() -> None:
        tried.set()
        raise ConnectionRefusedError()

    task = asyncio.ensure_future(Patience.of(60, first=10).until_done(away))
    await asyncio.wait_for(tried.wait(), timeout=5)  # failed once, now waiting
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_wait_ends_at_once_when_its_owner_stops() -> None:
    stopped = False
    patience = Patience.of(60, first=5, stopping=lambda: stopped)

    tried = asyncio.Event()

    async def away() -> None:
        tried.set()
        raise ConnectionRefusedError()

    task = asyncio.ensure_future(patience.until_done(away))
    await asyncio.wait_for(tried.wait(), timeout=5)
    await asyncio.sleep(0)  # into its 5 s wait
    assert not task.done()
    stopped = True
    started = time.monotonic()
    with pytest.raises(StillUnavailable):
        await task
    assert time.monotonic() - started < 1
