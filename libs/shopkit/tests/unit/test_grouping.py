"""Group commit: concurrent submissions share a transaction; one bad item fails alone."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from shopkit.grouping import GroupCommit


class Ledger:
    """A stand-in transaction: what a group wrote is kept only if the block ends cleanly."""

    def __init__(self) -> None:
        self.committed: list[list[str]] = []

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[list[str]]:
        pending: list[str] = []
        await asyncio.sleep(0)  # a round trip: lets other submitters queue meanwhile
        yield pending
        self.committed.append(pending)


async def write(pending: Any, items: list[str]) -> None:
    await asyncio.sleep(0.01)  # the statement's round trip
    if "bad" in items:
        raise ValueError("cannot write 'bad'")
    pending.extend(items)


async def test_concurrent_submissions_are_written_in_few_groups() -> None:
    ledger = Ledger()
    group: GroupCommit[str] = GroupCommit("test", ledger.transaction, write)  # type: ignore[arg-type]

    await asyncio.gather(*(group.submit(f"item-{i}") for i in range(20)))
    # Submitted in one tick: all of them are queued before the writer starts.
    assert ledger.committed == [[f"item-{i}" for i in range(20)]]

    ledger.committed.clear()
    first = asyncio.create_task(group.submit("first"))
    await asyncio.sleep(0.005)  # its group is being written
    await asyncio.gather(first, *(group.submit(f"later-{i}") for i in range(5)))
    # The items that came while a group was written went together in the next one.
    assert ledger.committed == [["first"], [f"later-{i}" for i in range(5)]]


async def test_a_bad_item_fails_only_its_own_submitter() -> None:
    ledger = Ledger()
    group: GroupCommit[str] = GroupCommit("test", ledger.transaction, write)  # type: ignore[arg-type]

    outcomes = await asyncio.gather(
        *(group.submit(item) for item in ("first", "a", "bad", "b")), return_exceptions=True
    )

    assert outcomes[0] is None and outcomes[1] is None and outcomes[3] is None
    assert isinstance(outcomes[2], ValueError)
    # The failed group was written again one item per transaction.
    assert ledger.committed == [["first"], ["a"], ["b"]]


async def test_a_lone_item_that_fails_raises_to_its_submitter() -> None:
    group: GroupCommit[str] = GroupCommit("test", Ledger().transaction, write)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        await group.submit("bad")
