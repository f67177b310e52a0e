"""`?wait=true` on issue: a request waits for its place to settle, woken by a notification.

Settling a place (issuing.settle, in whichever replica consumes the coupon's partition) NOTIFYs
at commit with the coupon and the span of line positions it settled; one listening connection
per process wakes the requests waiting on a place in that span, which read their row once. A
slow re-read backs it up, so a lost notification only costs time. At most `limit` requests
wait in one process: beyond that a request answers at once with its place as it is (202
PENDING), so a flood of `?wait=true` cannot pile up.
"""

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field

from fastapi import FastAPI

from coupon.issue_queue import IssueQueue, UserCouponDetail
from coupon.models import USER_COUPON, UserCoupon
from shopkit import notifications

SETTLED_CHANNEL = "coupon_settled"
NOTIFY_SETTLED = f"SELECT pg_notify('{SETTLED_CHANNEL}', $1)"
# A waiter re-reads its place this often even without a notification (LISTEN reconnecting).
FALLBACK_SECONDS = 2.0


def settled_payload(coupon_id: str, first: int | None, last: int | None) -> str:
    """`<coupon id> <first position> <last position>`, or the coupon id alone (wakes all)."""
    return coupon_id if first is None or last is None else f"{coupon_id} {first} {last}"


@dataclass(eq=False)
class _Waiter:
    position: int | None
    event: asyncio.Event = field(default_factory=asyncio.Event)


class Settlements:
    """The requests of this process waiting for their place in a line to settle."""

    def __init__(self, limit: int) -> None:
        self._waiting: dict[str, set[_Waiter]] = defaultdict(set)
        self._limit = limit
        self._count = 0

    @property
    def waiting(self) -> int:
        """How many requests are waiting now."""
        return self._count

    def settled(self, payload: str) -> None:
        """A NOTIFY from settling: wake the waiters whose place is in the settled span."""
        coupon_id, _, span = payload.partition(" ")
        first, _, last = span.partition(" ")
        for waiter in self._waiting.get(coupon_id, ()):
            if waiter.position is None or not last or int(first) <= waiter.position <= int(last):
                waiter.event.set()

    def wake_all(self) -> None:
        for waiting in self._waiting.values():
            for waiter in waiting:
                waiter.event.set()

    async def wait(
        self, queue: IssueQueue, held: UserCouponDetail, *, timeout: float
    ) -> UserCouponDetail:
        """The place once it left PENDING, or as it is after `timeout` seconds (or at once when
        `limit` requests wait already)."""
        if self._count >= self._limit:
            return held
        coupon_id = held.row.coupon_id
        waiter = _Waiter(held.row.position)
        self._waiting[coupon_id].add(waiter)
        self._count += 1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while True:
                waiter.event.clear()
                async with queue.db.autocommit() as conn:
                    found = await conn.fetchrow(USER_COUPON, held.row.id)
                assert found is not None
                row = UserCoupon(**found)
                left = deadline - loop.time()
                if row.status != "PENDING" or left <= 0:
                    return UserCouponDetail(row=row, definition=held.definition)
                try:
                    await asyncio.wait_for(waiter.event.wait(), min(left, FALLBACK_SECONDS))
                except TimeoutError:
                    pass
        finally:
            self._count -= 1
            self._waiting[coupon_id].discard(waiter)
            if not self._waiting[coupon_id]:
                del self._waiting[coupon_id]


async def listen(app: FastAPI) -> None:
    """Background job: one LISTEN connection feeding the process's settlement waiters."""
    settlements: Settlements = app.state.settlements
    await notifications.listen(
        app.state.settings.database_url,
        {SETTLED_CHANNEL: settlements.settled},
        on_connect=settlements.wake_all,  # anything settled while not listening
    )
