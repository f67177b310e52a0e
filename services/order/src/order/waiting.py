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
from collections.abc import Callable
from dataclasses import dataclass

from order import service
from order.store.rows import OrderRow
from order.views import Progress, order_out, read_changed
from shopkit import waiters
from shopkit.db import Database
from shopkit.waiters import Waiter

# A waiter re-reads its order this often even without a notification (LISTEN reconnecting).
FALLBACK_SECONDS = 2.0

Until = Callable[[Progress], bool]


@dataclass(eq=False)
class _Waiter(Waiter):
    until: Until
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


class Waiters(waiters.Waiters[_Waiter]):
    """The `?wait=true` requests of this process, by order."""

    def changed(self, payload: str) -> None:
        """A saga change's NOTIFY: wake the waiters whose condition now holds."""
        waiting = self.on(payload.partition(" ")[0])
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
        if self.full:
            row = await service.read_order(db, order_id=order_id)
            assert row is not None
            return WaitOutcome(done=until(Progress.of(row)), row=row)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        with self.registered(order_id, _Waiter(until)) as waiter:
            if unmet:
                await waiter.woken(min(timeout, FALLBACK_SECONDS))
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
                await waiter.woken(min(left, FALLBACK_SECONDS))
