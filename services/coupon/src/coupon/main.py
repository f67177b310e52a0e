"""The coupon service: definitions, first-come-first-served issuing, user coupons, checkout use."""

from fastapi import FastAPI

from contracts.coupon import (
    CouponIssued,
    CouponRejected,
    CouponReleased,
    CouponRepriced,
    CouponRepricingFailed,
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
from shopkit.metrics import Metrics


def build_app(settings: Settings | None = None, *, clock: Clock = system_clock) -> FastAPI:
    settings = settings or Settings()

    async def open_lines(app: FastAPI) -> None:
        app.state.lines = Lines(app.state.db)
        line_metrics(app.state.metrics, app.state.lines)
        app.state.settlements = Settlements(settings.max_waiters)
        app.state.limits = Limiter(
            {ISSUE: settings.limit_issues_per_user}, enabled=settings.rate_limits, clock=clock
        )

    return create_app(
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
            CouponRepriced,
            CouponRepricingFailed,
            CouponReleased,
        ),
        on_startup=[open_lines],
        background=[listen],
        clock=clock,
        middleware=[IssueFastLane],
    )


def line_metrics(metrics: Metrics, lines: Lines) -> None:
    """The line's length and the places it gave, read at each scrape of /metrics."""
    waiting = metrics.gauge(
        "shop_coupon_line_waiting", "Issue requests queued in this process, not yet answered"
    )
    metrics.on_scrape(lambda: waiting.set(lines.waiting()))
    metrics.count(
        "shop_coupon_line_placed",
        "Places in a coupon's line given (committed)",
        lambda: lines.placed,
    )
