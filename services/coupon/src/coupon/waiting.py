"""`?wait=true` on issue: a request waits for its place to settle, woken by a notification.

Settling a place (issuing.settle, in whichever replica consumes the coupon's partition) NOTIFYs
at commit with the coupon and the span of line positions it settled; one listening connection
per process wakes the requests waiting on a place in that span, which read their row once. A
slow re-read backs it up, so a lost notification only costs time. At most `limit` requests
wait in one process: beyond that a request answers at once with its place as it is (202
PENDING), so a flood of `?wait=true` cannot pile up.
"""

import asyncio
from dataclasses import dataclass

from fastapi import FastAPI

from coupon.issue_queue import IssueQueue, UserCouponDetail
from coupon.models import USER_COUPON, UserCoupon
from shopkit import notifications
from shopkit.waiters import Waiter, Waiters

SETTLED_CHANNEL = "coupon_settled"
NOTIFY_SETTLED = f"SELECT pg_notify('{SETTLED_CHANNEL}', $1)"
# A waiter re-reads its place this often even without a notification (LISTEN reconnecting).
FALLBACK_SECONDS = 2.0


def settled_payload(coupon_id: str, first: int | None, last: int | None) -> str:
    """`<coupon id> <first position> <last position>`, or the coupon id alone (wakes all)."""
    return coupon_id if first is None or last is None else f"{coupon_id} {first} {last}"


@dataclass(eq=False)
class _Waiter(Waiter):
    position: int | None


class Settlements(Waiters[_Waiter]):
    """The requests of this process waiting for their place in a coupon's queue to settle."""

    def settled(self, payload: str) -> None:
        """A NOTIFY from settling: wake the waiters whose place is in the settled span."""
        coupon_id, _, span = payload.partition(" ")
        first, _, last = span.partition(" ")
        for waiter in self.on(coupon_id):
            if waiter.position is None or not last or int(first) <= waiter.position <= int(last):
                waiter.event.set()

    async def wait(
        self, queue: IssueQueue, held: UserCouponDetail, *, timeout: float
    ) -> UserCouponDetail:
        """The place once it left PENDING, or as it is after `timeout` seconds (or at once when
        `limit` requests wait already)."""
        if self.full:
            return held
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        with self.registered(held.row.coupon_id, _Waiter(held.row.position)) as waiter:
            while True:
                waiter.event.clear()
                async with queue.db.autocommit() as conn:
                    found = await conn.fetchrow(USER_COUPON, held.row.id)
                assert found is not None
                row = UserCoupon(**found)
                left = deadline - loop.time()
                if row.status != "PENDING" or left <= 0:
                    return UserCouponDetail(row=row, definition=held.definition)
                await waiter.woken(min(left, FALLBACK_SECONDS))


async def listen(app: FastAPI) -> None:
    """Background job: one LISTEN connection feeding the process's settlement waiters."""
    settlements: Settlements = app.state.settlements
    await notifications.listen(
        app.state.settings.database_url,
        {SETTLED_CHANNEL: settlements.settled},
        on_connect=settlements.wake_all,  # anything settled while not listening
    )
