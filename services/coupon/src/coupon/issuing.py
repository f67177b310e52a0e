"""First-come-first-served issuing: a place in line over HTTP, then ISSUED by the line's consumer.

The HTTP side takes a place with one conditional UPDATE of the coupon's `coupon_lines` row
(`accepted < capacity`); that row lock makes acceptance a single total order per coupon, and
the outbox row for the request is written while the lock is held, so the coupon's partition
carries the requests in acceptance order. The consumer then takes the quantity for real.
Once a line is full it never opens again (a released coupon returns to its holder, not to the
pool), so each process remembers full lines and answers SOLD_OUT without touching the database.
"""

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.coupon import CouponIssued, CouponRejected, IssueCouponRequested
from coupon import domain
from coupon.models import Coupon, KnownUser, UserCoupon
from shopkit.db import Database
from shopkit.errors import Problem
from shopkit.outbox import add_message

TAKE_PLACE = text(
    "WITH line AS ("
    " UPDATE coupon_lines SET accepted = accepted + 1"
    " WHERE coupon_id = :coupon_id AND accepted < capacity RETURNING accepted)"
    " UPDATE user_coupons SET position = line.accepted FROM line"
    " WHERE user_coupons.id = :user_coupon_id RETURNING user_coupons.position"
)


@dataclass(frozen=True)
class Card:
    """The parts of a coupon definition that never change."""

    id: str
    name: str
    discount_type: domain.DiscountType
    discount_value: int
    total_quantity: int
    min_order_amount: int
    valid_days: int

    @classmethod
    def of(cls, coupon: Coupon) -> "Card":
        return cls(
            id=coupon.id,
            name=coupon.name,
            discount_type=coupon.discount_type,  # type: ignore[arg-type]
            discount_value=coupon.discount_value,
            total_quantity=coupon.total_quantity,
            min_order_amount=coupon.min_order_amount,
            valid_days=coupon.valid_days,
        )


@dataclass
class LineMemory:
    """What one process remembers: coupon cards, and the holders of every full line."""

    cards: dict[str, Card] = field(default_factory=dict)
    full_lines: dict[str, frozenset[str]] = field(default_factory=dict)

    async def card(self, db: Database, coupon_id: str) -> Card:
        """The coupon's card; 404 COUPON_NOT_FOUND when there is no such coupon."""
        card = self.cards.get(coupon_id)
        if card is None:
            async with db.sessions() as session:
                coupon = await session.get(Coupon, coupon_id)
            if coupon is None:
                raise Problem(404, "COUPON_NOT_FOUND", f"no coupon {coupon_id}")
            card = self.cards[coupon_id] = Card.of(coupon)
        return card

    async def remember_full(self, db: Database, coupon_id: str) -> None:
        # Every accepted place committed before the line could be seen full, so this set is final.
        async with db.sessions() as session:
            holders = await session.scalars(
                select(UserCoupon.user_id).where(UserCoupon.coupon_id == coupon_id)
            )
            self.full_lines[coupon_id] = frozenset(holders)


@dataclass(frozen=True)
class Held:
    """A user coupon with its coupon's card."""

    row: UserCoupon
    card: Card


async def take_place(
    db: Database,
    *,
    memory: LineMemory,
    coupon_id: str,
    user_id: str,
    vouched: bool,
    user_wait_seconds: float,
    now: datetime,
) -> Held:
    """Put the user in the coupon's line as PENDING; 409 SOLD_OUT or ALREADY_ISSUED otherwise.

    A user id `vouched` for by the token's own subject exists; any other must be known.
    """
    card = await memory.card(db, coupon_id)
    if not vouched:
        await require_known_user(db, user_id=user_id, wait_seconds=user_wait_seconds)
    holders = memory.full_lines.get(coupon_id)
    if holders is not None:
        raise _refusal(already=user_id in holders)
    row = UserCoupon(
        id=str(uuid.uuid4()),
        coupon_id=coupon_id,
        user_id=user_id,
        status="PENDING",
        requested_at=now,
    )
    try:
        async with db.transaction() as session:
            inserted = await session.execute(
                insert(UserCoupon)
                .values(
                    id=row.id,
                    coupon_id=coupon_id,
                    user_id=user_id,
                    status="PENDING",
                    requested_at=now,
                )
                .on_conflict_do_nothing()
                .returning(UserCoupon.seq)
            )
            if inserted.scalar_one_or_none() is None:
                raise _refusal(already=True)
            position = (
                await session.execute(
                    TAKE_PLACE, {"coupon_id": coupon_id, "user_coupon_id": row.id}
                )
            ).scalar_one_or_none()
            if position is None:
                raise _LineFull
            await add_message(
                session,
                IssueCouponRequested(
                    coupon_id=coupon_id, user_coupon_id=row.id, user_id=user_id, requested_at=now
                ),
            )
    except _LineFull:
        await memory.remember_full(db, coupon_id)
        raise _refusal(already=False) from None
    if position >= card.total_quantity:
        await memory.remember_full(db, coupon_id)
    row.position = position
    return Held(row=row, card=card)


class _LineFull(Exception):
    pass


def _refusal(*, already: bool) -> Problem:
    if already:
        return Problem(409, "ALREADY_ISSUED", "this user already has or is in line for it")
    return Problem(409, "SOLD_OUT", "every coupon has been taken")


async def require_known_user(db: Database, *, user_id: str, wait_seconds: float) -> None:
    """404 USER_NOT_FOUND unless wallet announced the user, waiting briefly for the event."""
    deadline = time.monotonic() + wait_seconds
    while True:
        async with db.sessions() as session:
            if await session.get(KnownUser, user_id, populate_existing=True) is not None:
                return
        if time.monotonic() >= deadline:
            raise Problem(404, "USER_NOT_FOUND", f"no user {user_id}")
        await asyncio.sleep(0.1)


async def wait_settled(
    db: Database, *, memory: LineMemory, user_coupon_id: str, timeout: float
) -> Held:
    """The user coupon once it left PENDING, or as it is after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        async with db.sessions() as session:
            row = await session.get(UserCoupon, user_coupon_id)
        assert row is not None
        if row.status != "PENDING" or time.monotonic() >= deadline:
            return Held(row=row, card=await memory.card(db, row.coupon_id))
        await asyncio.sleep(0.05)


async def settle(session: AsyncSession, *, request: IssueCouponRequested, now: datetime) -> None:
    """Issue a place in line for real: the quantity is taken now, guarded by the total."""
    row = await session.get(UserCoupon, request.user_coupon_id, with_for_update=True)
    if row is None or row.status != "PENDING":
        return
    valid_days = (
        await session.execute(
            update(Coupon)
            .where(Coupon.id == row.coupon_id, Coupon.issued_quantity < Coupon.total_quantity)
            .values(issued_quantity=Coupon.issued_quantity + 1)
            .returning(Coupon.valid_days)
        )
    ).scalar_one_or_none()
    if valid_days is None:
        # Unreachable while the line caps acceptance at the total; kept as the last guard.
        row.status = "REJECTED"
        await add_message(
            session,
            CouponRejected(coupon_id=row.coupon_id, user_coupon_id=row.id, user_id=row.user_id),
        )
        return
    row.status, row.issued_at = "ISSUED", now
    row.expires_at = domain.expires_at(now, valid_days)
    await add_message(
        session,
        CouponIssued(
            coupon_id=row.coupon_id,
            user_coupon_id=row.id,
            user_id=row.user_id,
            issued_at=now,
            expires_at=row.expires_at,
        ),
    )


async def remember_user(session: AsyncSession, *, user_id: str, registered_at: datetime) -> None:
    """Record a user id announced by the wallet."""
    await session.execute(
        insert(KnownUser)
        .values(user_id=user_id, registered_at=registered_at)
        .on_conflict_do_nothing()
    )
