"""The catalog service: products, categories, stock, and the saga's reservations."""

from fastapi import FastAPI

from catalog.api import router
from catalog.handlers import consumer
from catalog.settings import Settings
from contracts.catalog import (
    ProductChanged,
    ProductCreated,
    StockReleased,
    StockReservationFailed,
    StockReserved,
    StockReturned,
)
from shopkit.app import create_app
from shopkit.clock import Clock, system_clock

PUBLISHES = (
    ProductCreated,
    ProductChanged,
    StockReserved,
    StockReservationFailed,
    StockReleased,
    StockReturned,
)


def build_app(settings: Settings | None = None, *, clock: Clock = system_clock) -> FastAPI:
    settings = settings or Settings()
    return create_app(
        settings,
        title="Shop catalog",
        routers=[router],
        consumers=[consumer],
        publishes=PUBLISHES,
        clock=clock,
    )
