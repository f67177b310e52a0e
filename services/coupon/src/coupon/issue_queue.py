"""The issue queue: places in a coupon's first-come-first-served line, given in batches.

Every request for a coupon joins its process-local queue; one task per coupon drains the queue
in batches, each batch one short transaction that locks the coupon's `coupon_lines` row
(`SELECT ... FOR UPDATE`), gives the free places to the batch in arrival order, and writes the
IssueCouponRequested messages to the outbox while still holding the lock. So acceptance is one
total order per coupon across every replica (the row lock orders the batches, the queue orders a
batch), the outbox ids, and with them the coupon's Kafka partition, follow that order, and a
burst of N requests costs a handful of transactions instead of N fights for one hot row.

A sold-out line never opens again (a released coupon goes back to its holder, not to the pool),
so each process remembers sold-out coupons with their holders (read under the line's lock, so
final) and answers at once, without the database.
"""

import asyncio
import contextvars
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from contracts.coupon import IssueCouponRequested
from coupon import domain
from coupon.models import UserCoupon
from shopkit.db import Database, Transaction
from shopkit.errors import Problem
from shopkit.logs import correlation_id
from shopkit.outbox import envelope, publish

MAX_BATCH = 2_000

DEFINITION = (
    "SELECT id, name, discount_type, discount_value, total_quantity, min_order_amount,"
    " valid_days FROM coupons WHERE id = $1"
)
LOCK_LINE = "SELECT accepted, capacity FROM coupon_lines WHERE coupon_id = $1 FOR UPDATE"
IN_LINE = "SELECT user_id FROM user_coupons WHERE coupon_id = $1 AND user_id = ANY($2::varchar[])"
JOIN_LINE = (
    "INSERT INTO user_coupons (id, coupon_id, user_id, status, position, requested_at)"
    " SELECT p.id, $1, p.user_id, 'PENDING', p.position, p.requested_at"
    " FROM unnest($2::varchar[], $3::varchar[], $4::int[], $5::timestamptz[])"
    " AS p(id, user_id, position, requested_at)"
)
HOLDERS = "SELECT user_id FROM user_coupons WHERE coupon_id = $1"
ADVANCE_LINE = "UPDATE coupon_lines SET accepted = accepted + $2 WHERE coupon_id = $1"


@dataclass(frozen=True)
class Definition:
    """The parts of a coupon's definition that never change (its issued quantity does)."""

    id: str
    name: str
    discount_type: domain.DiscountType
    discount_value: int
    total_quantity: int
    min_order_amount: int
    valid_days: int


@dataclass(frozen=True)
class UserCouponDetail:
    """A user coupon with its coupon's definition: what a holder is shown."""

    row: UserCoupon
    definition: Definition


@dataclass
class _Arrival:
    user_coupon_id: str
    user_id: str
    requested_at: datetime
    correlation_id: str | None  # the request's, for its IssueCouponRequested
    answer: "asyncio.Future[int]"  # the place in line, or a Problem


@dataclass
class _CouponQueue:
    waiting: list[_Arrival] = field(default_factory=list)
    drainer: "asyncio.Task[None] | None" = None


@dataclass
class IssueQueue:
    """One process's queues of issue requests, coupons' definitions, and sold-out coupons'
    holders."""

    db: Database
    definitions: dict[str, Definition] = field(default_factory=dict)
    sold_out: dict[str, frozenset[str]] = field(default_factory=dict)
    queues: dict[str, _CouponQueue] = field(default_factory=dict)
    loading: dict[str, "asyncio.Future[Definition]"] = field(default_factory=dict)
    placed: int = 0  # places given in this process, for shop_coupon_line_placed_total

    def waiting(self) -> int:
        """Requests in this process's queues, not yet given a place or refused."""
        return sum(len(queue.waiting) for queue in self.queues.values())

    async def definition(self, coupon_id: str) -> Definition:
        """The coupon's definition; 404 COUPON_NOT_FOUND when there is no such coupon."""
        known = self.definitions.get(coupon_id)
        if known is not None:
            return known
        # A burst's first wave all asks at once: one query answers all of it.
        loading = self.loading.get(coupon_id)
        if loading is None:
            loading = self.loading[coupon_id] = asyncio.ensure_future(self._load(coupon_id))
            loading.add_done_callback(lambda _: self.loading.pop(coupon_id, None))
        return await asyncio.shield(loading)

    async def _load(self, coupon_id: str) -> Definition:
        async with self.db.autocommit() as conn:
            found = await conn.fetchrow(DEFINITION, coupon_id)
        if found is None:
            raise Problem(404, "COUPON_NOT_FOUND", f"no coupon {coupon_id}")
        definition = self.definitions[coupon_id] = Definition(**found)
        return definition

    async def take_place(self, *, coupon_id: str, user_id: str, now: datetime) -> UserCouponDetail:
        """Join the line as PENDING; 409 SOLD_OUT when it is full, ALREADY_ISSUED if in it."""
        definition = await self.definition(coupon_id)
        holders = self.sold_out.get(coupon_id)
        if holders is not None:
            raise refusal(already=user_id in holders)
        request = _Arrival(
            str(uuid.uuid4()),
            user_id,
            now,
            correlation_id.get(),
            asyncio.get_running_loop().create_future(),
        )
        queue = self.queues.setdefault(coupon_id, _CouponQueue())
        queue.waiting.append(request)
        if queue.drainer is None or queue.drainer.done():
            # A context of its own: the drainer serves every request, not the one that woke it.
            queue.drainer = asyncio.create_task(
                self._drain(coupon_id, queue), context=contextvars.Context()
            )
        position = await request.answer
        row = UserCoupon(
            id=request.user_coupon_id,
            coupon_id=coupon_id,
            user_id=user_id,
            status="PENDING",
            position=position,
            requested_at=now,
        )
        return UserCouponDetail(row=row, definition=definition)

    async def _drain(self, coupon_id: str, queue: _CouponQueue) -> None:
        while queue.waiting:
            batch, queue.waiting = queue.waiting[:MAX_BATCH], queue.waiting[MAX_BATCH:]
            holders = self.sold_out.get(coupon_id)
            try:
                if holders is None:
                    answers = await self._admit(coupon_id, batch)
                else:  # it sold out while this batch waited: no transaction needed
                    answers = [refusal(already=r.user_id in holders) for r in batch]
            except Exception as exc:  # the batch's requests fail; the next batch tries again
                answers = [exc] * len(batch)
            for request, answer in zip(batch, answers, strict=True):
                if request.answer.done():
                    continue  # the client went away; its place (if any) stays taken
                if isinstance(answer, BaseException):
                    request.answer.set_exception(answer)
                else:
                    request.answer.set_result(answer)

    async def _admit(self, coupon_id: str, batch: Sequence[_Arrival]) -> list[int | Exception]:
        """One transaction: the batch's places in arrival order, or why each got none.

        Every insert into a coupon's line happens under its row lock, so what this transaction
        reads of the line while holding the lock is exact.
        """
        firsts: dict[str, _Arrival] = {}
        for request in batch:
            firsts.setdefault(request.user_id, request)
        places: dict[str, int] = {}
        already: set[str] = set()  # users found in line already
        holders: frozenset[str] = frozenset()
        async with self.db.transaction() as tx:
            accepted, capacity = await tx.fetchrow(LOCK_LINE, coupon_id)
            if accepted < capacity:
                already = {row[0] for row in await tx.fetch(IN_LINE, coupon_id, list(firsts))}
                fresh = [r for r in firsts.values() if r.user_id not in already]
                placed = fresh[: capacity - accepted]
                if placed:
                    await self._place(tx, coupon_id, placed, first=accepted + 1)
                places = {r.user_id: accepted + 1 + i for i, r in enumerate(placed)}
                accepted += len(placed)
            if accepted >= capacity:
                holders = frozenset(row[0] for row in await tx.fetch(HOLDERS, coupon_id))
        self.placed += len(places)  # committed
        if accepted >= capacity:
            self.sold_out[coupon_id] = holders
            already |= holders - places.keys()
        answers: list[int | Exception] = []
        for request in batch:
            place = places.get(request.user_id)
            if place is not None and request is firsts[request.user_id]:
                answers.append(place)
            else:
                has_one = place is not None or request.user_id in already
                answers.append(refusal(already=has_one))
        return answers

    async def _place(
        self, tx: Transaction, coupon_id: str, placed: list[_Arrival], *, first: int
    ) -> None:
        await tx.execute(
            JOIN_LINE,
            coupon_id,
            [r.user_coupon_id for r in placed],
            [r.user_id for r in placed],
            list(range(first, first + len(placed))),
            [r.requested_at for r in placed],
        )
        await tx.execute(ADVANCE_LINE, coupon_id, len(placed))
        # Written under the line's lock, so outbox ids (and the partition) follow the places.
        requested = [
            envelope(
                IssueCouponRequested(
                    coupon_id=coupon_id,
                    user_coupon_id=r.user_coupon_id,
                    user_id=r.user_id,
                    requested_at=r.requested_at,
                ),
                correlation_id=r.correlation_id,
            )
            for r in placed
        ]
        await publish(tx, *requested)


def refusal(*, already: bool) -> Problem:
    if already:
        return Problem(409, "ALREADY_ISSUED", "this user already has or is in line for it")
    return Problem(409, "SOLD_OUT", "every coupon has been taken")
