"""A service under test, in-process: its settings, its app behind an HTTP client, and waiting
for an outcome with a deadline."""

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import httpx
from fastapi import FastAPI

from shopdev.testing.infra import Infra
from shopdev.testing.keys import session_keys
from shopkit.settings import ServiceSettings

T = TypeVar("T")
SettingsT = TypeVar("SettingsT", bound=ServiceSettings)


def settings_for(
    settings_type: type[SettingsT],
    infra: Infra,
    *,
    kafka_namespace: str,
    database_url: str,
    **overrides: Any,
) -> SettingsT:
    """A service's settings for tests: this session's database, Kafka namespace and token keys,
    plain-text logs, and `overrides`."""
    return settings_type(
        database_url=database_url,
        kafka_bootstrap=infra.kafka_bootstrap,
        kafka_namespace=kafka_namespace,
        log_json=False,
        jwt_public_keys=session_keys().public_keys,
        **overrides,
    )


@asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan (consumers, relay) and give an HTTP client bound to it in-process."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


async def poll(
    probe: Callable[[], Awaitable[T]],
    *,
    until: Callable[[T], bool] = bool,
    timeout: float = 15.0,
    interval: float = 0.05,
    message: str = "condition not met",
) -> T:
    """Call `probe` until `until(result)` holds; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if until(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} within {timeout}s; last value: {result!r}")
        await asyncio.sleep(interval)
