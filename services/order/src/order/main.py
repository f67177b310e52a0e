"""The order service: order API and the saga orchestrator."""

import asyncio
import logging

from fastapi import FastAPI

from contracts.catalog import CommitStock
from contracts.order import OrderCancelled, OrderFailed, OrderModified, OrderPaid
from order import ops, service
from order.api import router
from order.handlers import make_consumer
from order.parking import saga_metrics
from order.payments import payment_worker
from order.provider import merchant_headers
from order.reconcile import reconciler
from order.saga import COMMANDS
from order.settings import Settings
from order.store.sagas import CHANGED_CHANNEL, PROVIDER_WORK_CHANNEL
from order.waiting import Waiters
from shopkit import notifications
from shopkit.app import create_app
from shopkit.clock import Clock, system_clock
from shopkit.limits import Limiter

log = logging.getLogger("order.main")

# The steps' commands come from the saga's table; CommitStock is sent one-way (no step waits).
PUBLISHES = (
    *COMMANDS,
    CommitStock,
    OrderPaid,
    OrderFailed,
    OrderCancelled,
    OrderModified,
)


async def deadline_scanner(app: FastAPI) -> None:
    """Background job: re-send overdue steps, compensate those that ran out of attempts."""
    settings: Settings = app.state.settings
    while True:
        try:
            while await service.run_deadlines(
                app.state.db, settings=settings, now=app.state.clock()
            ):
                pass
        except Exception:
            log.exception("deadline scan failed")
        await asyncio.sleep(settings.scan_interval_seconds)


async def listen(app: FastAPI) -> None:
    """Background job: the process's one LISTEN connection. Saga changes go to the `?wait`
    requests; new provider work (and a reconnect, which may have missed some) to the payment
    worker."""
    work: asyncio.Event = app.state.provider_work
    await notifications.listen(
        app.state.settings.database_url,
        {CHANGED_CHANNEL: app.state.waiters.changed, PROVIDER_WORK_CHANNEL: lambda _: work.set()},
        on_connect=work.set,
    )


def build_app(settings: Settings | None = None, *, clock: Clock = system_clock) -> FastAPI:
    settings = settings or Settings()

    async def prepare(app: FastAPI) -> None:
        merchant_headers(settings)  # no usable merchant key, no start
        app.state.waiters = Waiters(settings.max_waiters)
        app.state.provider_work = asyncio.Event()  # the payment worker's wake-up
        app.state.limits = Limiter(
            {"order": settings.limit_orders_per_user}, enabled=settings.rate_limits, clock=clock
        )
        app.state.placement = service.OrderPlacement(app.state.db, settings)

    return create_app(
        settings,
        title="Shop orders",
        routers=[router, ops.router],
        consumers=[make_consumer(settings, clock)],
        publishes=PUBLISHES,
        on_startup=[prepare, saga_metrics],
        background=[listen, deadline_scanner, payment_worker, reconciler],
        clock=clock,
    )
