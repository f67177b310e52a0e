"""`?wait=true` requests of one process, each waiting for a notification about a key (an order,
a coupon). At most `limit` wait at once, so a flood of waiting requests cannot pile up: past it
a service answers at once with what it has."""

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar


@dataclass(eq=False)
class Waiter:
    """One waiting request; a service's subclass carries what its notifications are tested on."""

    event: asyncio.Event = field(default_factory=asyncio.Event, kw_only=True)

    async def woken(self, timeout: float) -> None:
        """Until a notification wakes this waiter, or `timeout` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.event.wait(), timeout)


W = TypeVar("W", bound=Waiter)


class Waiters(Generic[W]):
    """The waiting requests of this process, by key."""

    def __init__(self, limit: int) -> None:
        self._waiting: dict[str, set[W]] = defaultdict(set)
        self._limit = limit
        self._count = 0

    @property
    def waiting(self) -> int:
        """How many requests are waiting now."""
        return self._count

    @property
    def full(self) -> bool:
        """`limit` requests wait already: the next one should not."""
        return self._count >= self._limit

    def on(self, key: str) -> Iterable[W]:
        """The requests waiting on `key` now."""
        return self._waiting.get(key, ())

    def wake_all(self) -> None:
        """Wake every waiter (notifications may have been missed: LISTEN reconnected)."""
        for waiting in self._waiting.values():
            for waiter in waiting:
                waiter.event.set()

    @contextlib.contextmanager
    def registered(self, key: str, waiter: W) -> Iterator[W]:
        """`waiter` waits on `key` for the duration of the block."""
        self._waiting[key].add(waiter)
        self._count += 1
        try:
            yield waiter
        finally:
            self._count -= 1
            self._waiting[key].discard(waiter)
            if not self._waiting[key]:
                del self._waiting[key]
