"""The analytics service: popular products and sales statistics from order events."""

from fastapi import FastAPI

from analytics.api import router
from analytics.handlers import projection_consumer
from analytics.settings import Settings
from shopkit.app import create_app
from shopkit.clock import Clock, system_clock


def build_app(settings: Settings | None = None, *, clock: Clock = system_clock) -> FastAPI:
    settings = settings or Settings()
    return create_app(
        settings,
        title="Shop analytics",
        routers=[router],
        consumers=[projection_consumer(settings)],
        clock=clock,
    )
