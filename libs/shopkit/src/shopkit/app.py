"""The app factory: a service's main.py is its settings, routers, consumers and nothing else."""

import asyncio
import gc
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.telemetry import TelemetryConfig
from starlette.types import ASGIApp, Receive, Scope, Send

from contracts import Message
from shopkit import openapi, tracing
from shopkit.auth import TokenVerifier
from shopkit.clock import Clock, system_clock
from shopkit.db import Database, Timeouts
from shopkit.errors import RETRY_AFTER_S, install_error_handlers, problem_response
from shopkit.logs import configure_logging, correlation_id
from shopkit.messaging import Consumer
from shopkit.metrics import HttpMetrics, Metrics, metrics_router
from shopkit.ops import router as ops_router
from shopkit.relay import OutboxRelay
from shopkit.retention import prune_old_rows
from shopkit.settings import ServiceSettings

log = logging.getLogger("shopkit.app")

Hook = Callable[[FastAPI], Coroutine[Any, Any, None]]


class CorrelationMiddleware:
    """Takes X-Correlation-ID (or makes one), puts it in the logs and echoes it back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        cid = (headers.get(b"x-correlation-id") or headers.get(b"x-request-id") or b"").decode()
        cid = cid[:100] or str(uuid.uuid4())
        token = correlation_id.set(cid)

        async def send_with_id(message: Any) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"x-correlation-id", cid.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            correlation_id.reset(token)


def tune_garbage_collector(threshold: int) -> None:
    """Keep the cycle collector off what start-up built, and let it run less often.

    A service's modules, classes, schemas and routes live as long as the process, and every full
    collection would traverse them all again: frozen after start-up, they never are. Most of
    what a request allocates is freed by reference counting before a collection could find it,
    so a young-generation threshold of thousands instead of 700 finds about as much garbage with
    a fraction of the passes (figures: docs/performance.md).
    """
    gc.collect()  # what start-up left as garbage goes now, not into the frozen set
    gc.freeze()
    _, second, third = gc.get_threshold()
    gc.set_threshold(threshold, second, third)


def create_app(
    settings: ServiceSettings,
    *,
    title: str,
    routers: Sequence[APIRouter],
    consumers: Sequence[Consumer] = (),
    publishes: Sequence[type[Message]] = (),
    on_startup: Sequence[Hook] = (),
    background: Sequence[Hook] = (),
    clock: Clock = system_clock,
) -> FastAPI:
    """A FastAPI app whose lifespan starts the database, the Kafka consumers and the relay.

    `publishes` names the message types the service writes to its outbox; with the consumers it
    makes the service's AsyncAPI document (shopkit.asyncapi).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.verifier = TokenVerifier.from_settings(settings)  # no usable key, no start
        db = Database(
            settings.database_url,
            pool_size=settings.db_pool_size,
            timeouts=Timeouts.of(settings),
        )
        relay = OutboxRelay(settings)
        subscriptions = [consumer.subscribe(db, settings) for consumer in consumers]
        app.state.db, app.state.relay, app.state.subscriptions = db, relay, subscriptions
        app.state.metrics.count(
            "shop_outbox_sent", "Outbox rows sent to Kafka (acknowledged)", lambda: relay.sent
        )
        for hook in on_startup:
            await hook(app)
        await relay.start()
        for subscription in subscriptions:
            await subscription.start()
        tracing.serving(settings.service_name)  # the background jobs' spans are this service's
        jobs = (*background, prune_old_rows)
        tasks = [asyncio.create_task(job(app), name=job.__name__) for job in jobs]
        tune_garbage_collector(settings.gc_threshold)
        log.info("started", extra={"fields": {"consumers": [c.name for c in consumers]}})
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.gather(*(subscription.stop() for subscription in subscriptions))
            await relay.stop()
            await db.dispose()
            tracing.shutdown()

    # Before the app exists: uvicorn's own lines (it loads the factory first) go out as JSON too.
    configure_logging(settings.service_name, settings.log_level, json=settings.log_json)
    telemetry: TelemetryConfig = tracing.fastapi_telemetry(settings.service_name) or {
        "tracing": False,
        "metrics": False,
        "logs": False,
    }
    # The service's own /openapi.json stays; its /docs and /redoc pages would load their scripts
    # from a CDN: the shop's Swagger UI is the gateway's /api/docs (shopkit.openapi).
    app = FastAPI(
        title=title,
        lifespan=lifespan,
        telemetry=None if settings.otel else telemetry,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.clock = clock
    app.state.consumers = list(consumers)
    app.state.publishes = tuple(publishes)
    app.state.metrics = metrics = Metrics(query_timeout_s=settings.metrics_query_timeout_s)
    app.add_middleware(CorrelationMiddleware)
    app.add_middleware(HttpMetrics, metrics=metrics)
    install_error_handlers(app)
    openapi.install(app)  # schemes and problem responses as clients get them
    app.include_router(health_router())
    app.include_router(metrics_router())
    app.include_router(ops_router)
    for router in routers:
        app.include_router(router)
    return app


def health_router() -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/health")
    async def health() -> dict[str, str]:
        """Alive: the process answers."""
        return {"status": "ok"}

    @router.get("/ready", response_model=None)
    async def ready(request: Request) -> JSONResponse | dict[str, str]:
        """Ready: the database and Kafka answer, and the outbox is not falling behind."""
        state = request.app.state
        settings = state.settings
        try:
            async with asyncio.timeout(settings.ready_timeout_s):
                async with state.db.autocommit() as conn:
                    age = await conn.fetchval(_OLDEST_OUTBOX_AGE)
                await state.relay.ping()
        except Exception as exc:  # any failure means not ready, whatever it is
            return not_ready(repr(exc))
        if age is not None and age > settings.ready_max_outbox_age_s:
            return not_ready(f"the oldest unsent outbox message is {age:.0f} s old")
        return {"status": "ready"}

    return router


# The oldest row by id (the primary key, no scan): the relay sends in id order.
_OLDEST_OUTBOX_AGE = (
    "SELECT extract(epoch FROM clock_timestamp() - created_at)::float8 FROM outbox"
    " ORDER BY id LIMIT 1"
)


def not_ready(detail: str) -> JSONResponse:
    response = problem_response(503, "NOT_READY", detail)
    response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response


def from_state(name: str) -> Callable[[Request], Coroutine[Any, Any, Any]]:
    """A dependency answering `app.state.<name>`, which the service's lifespan set."""

    async def dependency(request: Request) -> Any:
        return getattr(request.app.state, name)

    dependency.__name__ = f"get_{name}"
    return dependency


get_db = from_state("db")
Db = Annotated[Database, Depends(get_db)]
ClockDep = Annotated[Clock, Depends(from_state("clock"))]
