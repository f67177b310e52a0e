"""Group commit: concurrent submissions share a transaction; one bad item fails alone."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from shopkit.grouping import GroupCommit


class Ledger:
    """A stand-in transaction: what a group wrote is kept only if the block ends cleanly. A
    write waits for `gate` (open unless a test closes it) and says it started on `writing`."""

    def __init__(self) -> None:
        self.committed: list[list[str]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.writing = asyncio.Event()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[list[str]]:
        pending: list[str] = []
        yield pending
        self.committed.append(pending)

    async def write(self, pending: Any, items: list[str]) -> None:
        self.writing.set()
        await self.gate.wait()  # the statement's round trip
        if "bad" in items:
            raise ValueError("cannot write 'bad'")
        pending.extend(items)


def grouped(ledger: Ledger) -> GroupCommit[str]:
    return GroupCommit("test", ledger.transaction, ledger.write)  # type: ignore[arg-type]


async def test_concurrent_submissions_are_written_in_few_groups() -> None:
    ledger = Ledger()
    group = grouped(ledger)

    await asyncio.gather(*(group.submit(f"item-{i}") for i in range(20)))
    # Submitted in one tick: all of them are queued before the writer starts.
    assert ledger.committed == [[f"item-{i}" for i in range(20)]]

    ledger.committed.clear()
    ledger.gate.clear()
    ledger.writing.clear()
    first = asyncio.create_task(group.submit("first"))
    await ledger.writing.wait()  # its group is being written
    later = [asyncio.create_task(group.submit(f"later-{i}")) for i in range(5)]

    async def open_gate() -> None:  # runs after the five submissions have queued (FIFO)
        ledger.gate.set()

    await asyncio.gather(first, *later, asyncio.create_task(open_gate()))
    # The items that came while a group was written went together in the next one.
    assert ledger.committed == [["first"], [f"later-{i}" for i in range(5)]]


async def test_a_bad_item_fails_only_its_own_submitter() -> None:
    ledger = Ledger()
    group = grouped(ledger)

    outcomes = await asyncio.gather(
        *(group.submit(item) for item in ("first", "a", "bad", "b")), return_exceptions=True
    )

    assert outcomes[0] is None and outcomes[1] is None and outcomes[3] is None
    assert isinstance(outcomes[2], ValueError)
    # The failed group was written again one item per transaction.
    assert ledger.committed == [["first"], ["a"], ["b"]]


async def test_a_lone_item_that_fails_raises_to_its_submitter() -> None:
    group = grouped(Ledger())
    with pytest.raises(ValueError):
        await group.submit("bad")
