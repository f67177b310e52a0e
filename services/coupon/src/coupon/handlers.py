"""Kafka consumers: the issue line, the saga's coupon commands, and users learned from wallet.

Three consumer groups, so a burst in the issue line never delays an order's coupon commands.
They are built per app because they read the app's (injectable) clock.
"""

from sqlalchemy.ext.asyncio import AsyncSession

from contracts import Envelope
from contracts.coupon import IssueCouponRequested, ReleaseCoupon, RepriceCoupon, ReserveCoupon
from contracts.wallet import UserRegistered
from coupon import checkout, issuing
from shopkit.clock import Clock
from shopkit.messaging import Consumer


def build_consumers(clock: Clock) -> list[Consumer]:
    line, saga, users = Consumer("coupon-line"), Consumer("coupon-saga"), Consumer("coupon-users")

    @line.handles(IssueCouponRequested)
    async def on_issue_requested(
        session: AsyncSession, request: IssueCouponRequested, _: Envelope
    ) -> None:
        await issuing.settle(session, request=request, now=clock())

    @saga.handles(ReserveCoupon)
    async def on_reserve(session: AsyncSession, command: ReserveCoupon, _: Envelope) -> None:
        await checkout.reserve(session, command=command, now=clock())

    @saga.handles(RepriceCoupon)
    async def on_reprice(session: AsyncSession, command: RepriceCoupon, _: Envelope) -> None:
        await checkout.reprice(session, command=command)

    @saga.handles(ReleaseCoupon)
    async def on_release(session: AsyncSession, command: ReleaseCoupon, _: Envelope) -> None:
        await checkout.release(session, command=command)

    @users.handles(UserRegistered)
    async def on_user_registered(session: AsyncSession, event: UserRegistered, _: Envelope) -> None:
        await issuing.remember_user(
            session, user_id=event.user_id, registered_at=event.registered_at
        )

    return [line, saga, users]
