"""`?wait=true` requests: each waits for its order to reach a condition, woken by LISTEN.

Every transaction that moves a saga NOTIFYs at commit with the order's new status and operation,
and once nothing is in flight, the order itself as JSON (`views.changed_payload`); the process's
LISTEN connection hands that to `Waiters.changed`. A request whose condition now holds answers
with the order from the notification, or reads it again when the notification did not carry it
(or the request needs the whole saga). A slow poll backs it up, so a lost notification only
costs time. At most `limit` requests wait in one process: beyond that a request answers at once
with the order as it is (202 while PENDING), so a flood of `?wait=true` cannot pile up.
"""

import asyncio
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from order import service
from order.store.rows import OrderRow
from order.views import Progress, order_out, read_changed
from shopkit.db import Database

# A waiter re-reads its order this often even without a notification (LISTEN reconnecting).
FALLBACK_SECONDS = 2.0

Until = Callable[[Progress], bool]


@dataclass(eq=False)
class _Waiter:
    until: Until
    event: asyncio.Event = field(default_factory=asyncio.Event)
    body: str | None = None  # the order as JSON, from a notification that met `until`


@dataclass(frozen=True)
class WaitOutcome:
    """How a wait ended: `done` when the condition held; the order either as `body` (its JSON,
    from the notification) or as `row` (read from the database)."""

    done: bool
    row: OrderRow | None = None
    body: str | None = None

    def order_json(self) -> str:
        if self.body is not None:
            return self.body
        assert self.row is not None
        return order_out(self.row).model_dump_json()


class Waiters:
    def __init__(self, limit: int) -> None:
        self._waiting: dict[str, set[_Waiter]] = defaultdict(set)
        self._limit = limit
        self._count = 0

    @property
    def waiting(self) -> int:
        """How many requests are waiting now."""
        return self._count

    def changed(self, payload: str) -> None:
        """A saga change's NOTIFY: wake the waiters whose condition now holds."""
        waiting = self._waiting.get(payload.partition(" ")[0])
        if not waiting:
            return
        _, progress, body = read_changed(payload)
        for waiter in waiting:
            if waiter.until(progress):
                waiter.body = body
                waiter.event.set()

    async def wait(
        self,
        db: Database,
        order_id: str,
        *,
        until: Until,
        timeout: float,
        unmet: bool = False,
        read: bool = False,
    ) -> WaitOutcome:
        """The order once `until` holds (done), or as it is when `timeout` runs out.

        `unmet`: the caller has just seen `until` not hold (it placed the order a moment ago),
        so the order is not read before the first notification. `read`: the caller needs the
        row (the whole saga), not only the order's JSON, so it is always read. When `limit`
        requests wait already, the order is read once and returned as it is."""
        if self._count >= self._limit:
            row = await service.read_order(db, order_id=order_id)
            assert row is not None
            return WaitOutcome(done=until(Progress.of(row)), row=row)
        waiter = _Waiter(until)
        self._waiting[order_id].add(waiter)
        self._count += 1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            if unmet:
                await _woken(waiter, min(timeout, FALLBACK_SECONDS))
            while True:
                if waiter.body is not None and not read:
                    return WaitOutcome(done=True, body=waiter.body)
                waiter.event.clear()
                row = await service.read_order(db, order_id=order_id)
                assert row is not None
                if until(Progress.of(row)):
                    return WaitOutcome(done=True, row=row)
                left = deadline - loop.time()
                if left <= 0:
                    return WaitOutcome(done=False, row=row)
                await _woken(waiter, min(left, FALLBACK_SECONDS))
        finally:
            self._count -= 1
            self._waiting[order_id].discard(waiter)
            if not self._waiting[order_id]:
                del self._waiting[order_id]


async def _woken(waiter: _Waiter, timeout: float) -> None:
    """Until the waiter is notified, or `timeout` seconds."""
    try:
        await asyncio.wait_for(waiter.event.wait(), timeout=timeout)
    except TimeoutError:
        pass
