"""The coupon service: definitions, first-come-first-served issuing, user coupons, checkout use."""

from fastapi import FastAPI

from contracts.coupon import (
    CouponIssued,
    CouponRejected,
    CouponReleased,
    CouponReservationFailed,
    CouponReserved,
    IssueCouponRequested,
)
from coupon.api import ISSUE, router
from coupon.gate import IssueFastLane
from coupon.handlers import build_consumers
from coupon.line import Lines
from coupon.settings import Settings
from coupon.waiting import Settlements, listen
from shopkit.app import create_app
from shopkit.clock import Clock, system_clock
from shopkit.limits import Limiter


def build_app(settings: Settings | None = None, *, clock: Clock = system_clock) -> FastAPI:
    settings = settings or Settings()

    async def open_lines(app: FastAPI) -> None:
        app.state.lines = Lines(app.state.db)
        app.state.settlements = Settlements(settings.max_waiters)
        app.state.limits = Limiter(
            {ISSUE: settings.limit_issues_per_user}, enabled=settings.rate_limits, clock=clock
        )

    app = create_app(
        settings,
        title="Shop coupons",
        routers=[router],
        consumers=build_consumers(clock),
        publishes=(
            IssueCouponRequested,
            CouponIssued,
            CouponRejected,
            CouponReserved,
            CouponReservationFailed,
            CouponReleased,
        ),
        on_startup=[open_lines],
        background=[listen],
        clock=clock,
    )
    app.add_middleware(IssueFastLane)
    return app
