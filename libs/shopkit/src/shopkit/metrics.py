"""Prometheus metrics at /metrics on each service's own port (never through the gateway).

What a request costs is one histogram observation (`HttpMetrics`); everything else is read when
Prometheus scrapes: consumer lag and positions from the Kafka consumers, pool usage from the
pools, counters the kit keeps as plain integers, and the gauges that need the database (outbox
backlog, dead letters, a service's own such as sagas by step) in one short transaction bounded
by `metrics_query_timeout_s`. A database that does not answer never fails the scrape: the last
values read are served, and `shop_metrics_source_up{source}` says 0.

Each app has its own registry: the in-process tests run several apps in one process. With
`SHOP_<NAME>_WORKERS` > 1 a scrape reaches one worker and shows that worker's numbers
(docs/operations.md).
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import asyncpg
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    CollectorRegistry,
    Gauge,
    Histogram,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from shopkit.http_metrics import HttpMetrics
from shopkit.subscription import Subscription

__all__ = ["HttpMetrics", "Metrics", "metrics_router"]

log = logging.getLogger("shopkit.metrics")

# Latency buckets (seconds) around what the shop answers in: ~1 ms reads to multi-second waits.
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

Query = Callable[[asyncpg.Connection], Awaitable[None]]
Reading = Callable[[], Iterable[Metric]]

_OUTBOX = (
    # Bounded: a backlog of millions is counted as 100,000 and still reads as "very behind".
    "SELECT (SELECT count(*) FROM (SELECT 1 FROM outbox LIMIT 100000) o),"
    " (SELECT extract(epoch FROM clock_timestamp() - created_at)::float8 FROM outbox"
    "  ORDER BY id LIMIT 1)"
)
_DEAD_LETTERS = (
    "SELECT topic, status, count(*) FROM dead_letters WHERE status <> 'REDRIVEN'"
    " GROUP BY topic, status"
)


class Metrics:
    """One app's registry, its kit metrics, and what is read at scrape time."""

    def __init__(self, *, query_timeout_s: float = 2.0) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.query_timeout_s = query_timeout_s
        self._queries: list[tuple[str, Query]] = []
        self._probes: list[Callable[[], Awaitable[None] | None]] = []
        self._refreshing = asyncio.Lock()
        self._gauges: dict[str, Gauge] = {}
        self._counts: dict[str, Reading] = {}
        self.registry.register(_Readings(self._counts))
        # The process: CPU, memory, open files (process_*) and garbage collection (python_gc_*).
        ProcessCollector(registry=self.registry)
        self.registry.register(GC_COLLECTOR)
        self.http = Histogram(
            "shop_http_request_duration_seconds",
            "HTTP requests by method, route template and status class (2xx, 4xx, 5xx...)",
            ["method", "route", "status"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.source_up = self.gauge(
            "shop_metrics_source_up",
            "1 when the last scrape-time read of a source (a query, Kafka) succeeded, else 0",
            ["source"],
        )
        self.lag = self.gauge(
            "shop_consumer_lag",
            "Records of a partition the group has not handled yet (high watermark - next offset"
            " past the last handled record)",
            ["group", "topic", "partition"],
        )
        self.position = self.gauge(
            "shop_consumer_position",
            "The group's next offset in a partition (its rate is the consumption rate)",
            ["group", "topic", "partition"],
        )
        self.outbox_backlog = self.gauge(
            "shop_outbox_backlog", "Outbox rows not yet sent to Kafka (counted up to 100,000)"
        )
        self.outbox_oldest = self.gauge(
            "shop_outbox_oldest_age_seconds", "Age of the oldest unsent outbox row (0 if none)"
        )
        self.dead_letters = self.gauge(
            "shop_dead_letters",
            "Dead letters not redriven yet, by original topic and status (DEAD, REDRIVING)",
            ["topic", "status"],
        )
        self.pool_in_use = self.gauge(
            "shop_db_pool_in_use", "Database connections lent out, by pool", ["pool"]
        )
        self.pool_size = self.gauge(
            "shop_db_pool_size", "Most connections a pool may hold, by pool", ["pool"]
        )
        self._children: dict[tuple[str, str, int], Any] = {}
        self.on_scrape_query("outbox", self._read_outbox)
        self.on_scrape_query("dead_letters", self._read_dead_letters)

    def gauge(self, name: str, documentation: str, labels: Iterable[str] = ()) -> Gauge:
        """A gauge in this app's registry (a service's own, set by its scrape-time reads);
        the same one again when asked twice (a lifespan run again)."""
        gauge = self._gauges.get(name)
        if gauge is None:
            gauge = Gauge(name, documentation, list(labels), registry=self.registry)
            self._gauges[name] = gauge
        return gauge

    def on_scrape_query(self, source: str, query: Query) -> None:
        """Run `query(connection)` at each scrape, in one bounded read-only transaction; it sets
        its gauges. When it fails, the gauges keep their last values."""
        self._queries.append((source, query))

    def on_scrape(self, probe: Callable[[], Awaitable[None] | None]) -> None:
        """Call `probe()` at each scrape (in the process, no I/O beyond what it awaits)."""
        self._probes.append(probe)

    def count(self, name: str, documentation: str, value: Callable[[], float]) -> None:
        """A counter kept elsewhere as a plain number (no prometheus_client on that path),
        exposed as `<name>_total` with what `value()` says at collection time."""

        def reading() -> Iterable[Metric]:
            family = CounterMetricFamily(name, documentation)
            family.add_metric([], value())
            yield family

        self._counts[name] = reading

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        child = self._children.get((method, route, status))
        if child is None:
            child = self.http.labels(method, route, f"{status // 100}xx")
            self._children[(method, route, status)] = child
        child.observe(seconds)

    async def render(self, app: FastAPI) -> bytes:
        """The exposition text, after the scrape-time reads (skipped while one is running)."""
        if not self._refreshing.locked():
            async with self._refreshing:
                await self._refresh(app)
        return generate_latest(self.registry)

    async def _refresh(self, app: FastAPI) -> None:
        state = app.state
        if not hasattr(state, "db"):
            return  # the lifespan has not started the database and the consumers (yet)
        for probe in self._probes:
            try:
                result = probe()
                if result is not None:
                    await result
            except Exception as exc:
                log.warning("metrics probe failed", extra={"fields": {"error": repr(exc)}})
        in_use, size = state.db.pool_usage()
        self.pool_in_use.labels("asyncpg").set(in_use)
        self.pool_size.labels("asyncpg").set(size)
        await self._read_kafka(app)
        await self._read_database(app)

    async def _read_kafka(self, app: FastAPI) -> None:
        namespace = app.state.settings.kafka_namespace
        lags: list[tuple[tuple[str, str, str], int, int]] = []
        subscriptions: list[Subscription] = app.state.subscriptions
        try:
            async with asyncio.timeout(self.query_timeout_s):
                for subscription in subscriptions:
                    consumer = subscription.consumer
                    assigned = consumer.assignment()
                    handled = subscription.offsets.handled_through
                    for gone in handled.keys() - assigned:  # revoked: another member has it
                        handled.pop(gone, None)
                    for tp in assigned:
                        position = await consumer.position(tp)
                        highwater = consumer.highwater(tp)
                        if tp not in handled:
                            # Once per partition: the group's offset, where this process began.
                            committed = await consumer.committed(tp)
                            handled[tp] = position if committed is None else committed
                        # Polled is not handled: a poll waiting out an outage still counts.
                        done = handled[tp]
                        lag = max(0, highwater - done) if highwater is not None else 0
                        labels = (
                            subscription.group,
                            tp.topic.removeprefix(namespace),
                            str(tp.partition),
                        )
                        lags.append((labels, lag, position))
        except Exception as exc:  # a rebalance or an unreachable broker: keep what is known
            self.source_up.labels("kafka").set(0)
            log.warning("consumer lag not read", extra={"fields": {"error": repr(exc)}})
            return
        self.lag.clear()
        self.position.clear()
        for labels, lag, position in lags:
            self.lag.labels(*labels).set(lag)
            self.position.labels(*labels).set(position)
        self.source_up.labels("kafka").set(1)

    async def _read_database(self, app: FastAPI) -> None:
        db = app.state.db
        for source, query in self._queries:
            try:
                async with asyncio.timeout(self.query_timeout_s):
                    async with db.transaction() as conn:
                        timeout_ms = int(self.query_timeout_s * 1000)
                        await conn.execute(f"SET LOCAL statement_timeout = {timeout_ms}")
                        await query(conn)
            except Exception as exc:  # an outage shows as source_up 0, never as a failed scrape
                self.source_up.labels(source).set(0)
                log.warning(
                    "metrics query failed",
                    extra={"fields": {"source": source, "error": repr(exc)}},
                )
                if isinstance(exc, TimeoutError):
                    return  # the next query would wait as long: the database is not answering
                continue
            self.source_up.labels(source).set(1)

    async def _read_outbox(self, conn: asyncpg.Connection) -> None:
        backlog, oldest = await conn.fetchrow(_OUTBOX)
        self.outbox_backlog.set(backlog)
        self.outbox_oldest.set(oldest or 0.0)

    async def _read_dead_letters(self, conn: asyncpg.Connection) -> None:
        rows = await conn.fetch(_DEAD_LETTERS)
        self.dead_letters.clear()
        for topic, status, count in rows:
            self.dead_letters.labels(topic, status).set(count)


class _Readings(Collector):
    def __init__(self, readings: dict[str, Reading]) -> None:
        self.readings = readings

    def collect(self) -> Iterable[Metric]:
        for reading in list(self.readings.values()):
            yield from reading()

    def describe(self) -> Iterable[Metric]:
        return ()  # made at collection time; nothing to check for clashes at registration


def metrics_router() -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        """Prometheus metrics; for the operators' network only (docs/operations.md)."""
        if _forwarded(request):
            # The gateway never routes /metrics; a request that came through a proxy anyway
            # (a catch-all added later) is refused rather than shown to the internet.
            return Response(status_code=404)
        body = await request.app.state.metrics.render(request.app)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return router


def _forwarded(request: Request) -> bool:
    headers = request.headers
    return "x-forwarded-for" in headers or "x-real-ip" in headers
