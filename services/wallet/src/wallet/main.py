"""The wallet service: users, login, balances and the ledger."""

from fastapi import FastAPI

from contracts.wallet import (
    BalanceCharged,
    UserRegistered,
    WalletDebited,
    WalletDebitFailed,
    WalletRefunded,
)
from shopkit.app import create_app
from shopkit.clock import Clock, system_clock
from wallet import service
from wallet.api import limiter, router
from wallet.handlers import consumer
from wallet.passwords import Passwords
from wallet.settings import Settings


def build_app(settings: Settings | None = None, *, clock: Clock = system_clock) -> FastAPI:
    settings = settings or Settings()

    async def open_limits(app: FastAPI) -> None:
        app.state.limits = limiter(settings, clock)

    async def seed_admin(app: FastAPI) -> None:
        app.state.passwords = Passwords(
            time_cost=settings.argon2_time_cost,
            memory_kib=settings.argon2_memory_kib,
            concurrency=settings.hash_concurrency,
            queue=settings.hash_queue,
        )
        if settings.admin_password:
            await service.ensure_admin(
                app.state.db,
                passwords=app.state.passwords,
                email=settings.admin_email,
                password=settings.admin_password,
                now=clock(),
            )

    return create_app(
        settings,
        title="Shop wallet",
        routers=[router],
        consumers=[consumer],
        publishes=(
            UserRegistered,
            BalanceCharged,
            WalletDebited,
            WalletDebitFailed,
            WalletRefunded,
        ),
        on_startup=[open_limits, seed_admin],
        clock=clock,
    )
