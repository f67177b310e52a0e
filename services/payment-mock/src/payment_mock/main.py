"""The payment provider mock: an "external" gateway reached over HTTP; it publishes nothing."""

import random as _random

from fastapi import FastAPI

from payment_mock import service
from payment_mock.api import router
from payment_mock.domain import Random
from payment_mock.settings import Settings
from shopkit.app import create_app
from shopkit.clock import Clock, system_clock
from shopkit.keys import check_secret


def build_app(
    settings: Settings | None = None, *, clock: Clock = system_clock, random: Random | None = None
) -> FastAPI:
    settings = settings or Settings()

    async def prepare(app: FastAPI) -> None:
        key = settings.merchant_key.get_secret_value() if settings.merchant_key else None
        app.state.merchant_key = check_secret(key, variable="SHOP_MERCHANT_KEY").encode()
        app.state.payments = service.Payments(app.state.db)

    app = create_app(
        settings,
        title="Payment provider (mock)",
        routers=[router],
        on_startup=[prepare],
        clock=clock,
    )
    app.state.random = random or _random.Random(settings.random_seed).random
    return app
