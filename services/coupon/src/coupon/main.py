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
from coupon.api import router
from coupon.handlers import build_consumers
from coupon.issue_endpoint import ISSUE, IssueEndpoint
from coupon.issue_queue import IssueQueue
from coupon.settings import Settings
from coupon.waiting import Settlements, listen
from shopkit.app import create_app
from shopkit.clock import Clock, system_clock
from shopkit.limits import Limiter
from shopkit.metrics import Metrics


def build_app(settings: Settings | None = None, *, clock: Clock = system_clock) -> FastAPI:
    settings = settings or Settings()

    async def open_issue_queue(app: FastAPI) -> None:
        app.state.issue_queue = IssueQueue(app.state.db)
        queue_metrics(app.state.metrics, app.state.issue_queue)
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
            CouponRepriced,
            CouponRepricingFailed,
            CouponReleased,
        ),
        on_startup=[open_issue_queue],
        background=[listen],
        clock=clock,
    )
    # Outermost, outside the generic HTTP metrics: the issue endpoint times itself.
    app.add_middleware(IssueEndpoint)
    return app


def queue_metrics(metrics: Metrics, queue: IssueQueue) -> None:
    """The issue queue's length and the places it gave, read at each scrape of /metrics."""
    waiting = metrics.gauge(
        "shop_coupon_line_waiting", "Issue requests queued in this process, not yet answered"
    )
    metrics.on_scrape(lambda: waiting.set(queue.waiting()))
    metrics.count(
        "shop_coupon_line_placed",
        "Places in a coupon's line given (committed)",
        lambda: queue.placed,
    )
