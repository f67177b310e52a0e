"""Group commit: writes submitted concurrently share one transaction, one statement if they can.

A process that writes the same kind of row for many concurrent requests (an order placed per
HTTP request, a payment result per provider call) pays a round trip or more and a commit (a WAL
flush) for each. A `GroupCommit` writes whatever was submitted while the previous group was
being written, all in one transaction, with a writer that takes the whole list.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Generic, TypeVar

import asyncpg

log = logging.getLogger("shopkit.grouping")

T = TypeVar("T")


class GroupCommit(Generic[T]):
    """Items written together, many per transaction.

    The first item that finds no group being written starts one; items submitted while it
    commits wait for the next group, which takes all of them. Under no load a group is one
    item and costs what writing it alone would. If a group fails, its items are written again
    one per transaction, so one bad item cannot fail the others: each submitter gets its own
    item's outcome (its exception, if it has one).

    `transaction` opens what a group is written on: `Database.transaction`, or
    `Database.autocommit` when each of the writer's statements is atomic on its own. Then a
    group that fails halfway may have written part of itself, and writing its items again
    must find that harmless (the payment mock keeps each request's payment id for that).
    """

    def __init__(
        self,
        name: str,
        transaction: Callable[[], AbstractAsyncContextManager[asyncpg.Connection]],
        write: Callable[[asyncpg.Connection, list[T]], Awaitable[None]],
    ) -> None:
        self.name = name
        self._transaction = transaction
        self._write = write
        self._queued: list[tuple[T, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> None:
        """Return once `item` is committed (with the group it went in); raise if it cannot be."""
        done = asyncio.get_running_loop().create_future()
        self._queued.append((item, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_groups(), name=f"group-{self.name}")
        await done

    async def _write_groups(self) -> None:
        while self._queued:
            group, self._queued = self._queued, []
            try:
                async with self._transaction() as conn:
                    await self._write(conn, [item for item, _ in group])
            except Exception as exc:
                if len(group) == 1:
                    _settle(group[0][1], exc)
                    continue
                log.warning(
                    "writing a group failed; writing its items one by one",
                    extra={"fields": {"group": self.name, "size": len(group), "error": repr(exc)}},
                )
                for item, done in group:
                    try:
                        async with self._transaction() as conn:
                            await self._write(conn, [item])
                    except Exception as one:
                        _settle(done, one)
                    else:
                        _settle(done)
                continue
            for _, done in group:
                _settle(done)


def _settle(done: "asyncio.Future[None]", error: Exception | None = None) -> None:
    if done.done():
        return  # its submitter is gone (cancelled, or shutting down)
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)
