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
from shopkit.keys import MIN_PASSWORD_LENGTH, check_secret
from wallet import tokens, users
from wallet.api import limiter, router
from wallet.handlers import consumer
from wallet.passwords import Passwords
from wallet.settings import Settings


def build_app(settings: Settings | None = None, *, clock: Clock = system_clock) -> FastAPI:
    settings = settings or Settings()

    async def open_limits(app: FastAPI) -> None:
        app.state.limits = limiter(settings, clock)

    async def seed_admin(app: FastAPI) -> None:
        tokens.check_signer(settings, app.state.verifier)
        app.state.passwords = Passwords(
            time_cost=settings.argon2_time_cost,
            memory_kib=settings.argon2_memory_kib,
            concurrency=settings.hash_concurrency,
            queue=settings.hash_queue,
        )
        if settings.admin_password is not None:
            await users.ensure_admin(
                app.state.db,
                passwords=app.state.passwords,
                email=settings.admin_email,
                password=check_secret(
                    settings.admin_password,
                    variable="SHOP_ADMIN_PASSWORD",
                    min_length=MIN_PASSWORD_LENGTH,
                ),
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
