"""Kafka consumers: the issue queue's requests, the saga's coupon commands, users from wallet.

Three consumer groups, so a burst in the issue queue never delays an order's coupon commands.
They are built per app because they read the app's (injectable) clock.
"""

from contracts import Envelope
from contracts.coupon import IssueCouponRequested, ReleaseCoupon, RepriceCoupon, ReserveCoupon
from contracts.wallet import UserRegistered
from coupon import checkout, issuing
from shopkit.clock import Clock
from shopkit.db import Transaction
from shopkit.messaging import Consumer, each


def build_consumers(clock: Clock) -> list[Consumer]:
    # Group names are the deployed ones: renaming a group would reset its offsets.
    line, saga, users = Consumer("coupon-line"), Consumer("coupon-saga"), Consumer("coupon-users")

    @line.handles(IssueCouponRequested)
    @each
    async def on_issue_requested(
        tx: Transaction, request: IssueCouponRequested, _: Envelope
    ) -> None:
        await issuing.settle(tx, request=request, now=clock())

    @saga.handles(ReserveCoupon)
    @each
    async def on_reserve(tx: Transaction, command: ReserveCoupon, _: Envelope) -> None:
        await checkout.reserve(tx, command=command, now=clock())

    @saga.handles(RepriceCoupon)
    @each
    async def on_reprice(tx: Transaction, command: RepriceCoupon, _: Envelope) -> None:
        await checkout.reprice(tx, command=command)

    @saga.handles(ReleaseCoupon)
    @each
    async def on_release(tx: Transaction, command: ReleaseCoupon, _: Envelope) -> None:
        await checkout.release(tx, command=command)

    @users.handles(UserRegistered)
    @each
    async def on_user_registered(tx: Transaction, event: UserRegistered, _: Envelope) -> None:
        await issuing.remember_user(tx, user_id=event.user_id, registered_at=event.registered_at)

    return [line, saga, users]
