"""The auditor's reads: every service's database (read-only SQL, one snapshot per database) and
the run's dead-letter topics. Nothing here judges; `checker` does."""

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from chaos.books import (
    CouponRow,
    LedgerSums,
    OrderLine,
    OrderRow,
    PaymentRow,
    StockRow,
    UserCouponRow,
)
from chaos.stack import Shop

DEAD_LETTER_SAMPLES = 5


@asynccontextmanager
async def snapshot(shop: Shop, service: str) -> AsyncIterator[asyncpg.Connection]:
    """A read-only, repeatable-read transaction on the service's database."""
    conn = await asyncpg.connect(shop.infra.pg_url(shop.databases[service]), timeout=10)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            yield conn
    finally:
        await conn.close()


async def unsettled_orders(shop: Shop) -> int:
    """Orders still PENDING or with a cancel/modify in flight."""
    async with snapshot(shop, "order") as conn:
        return int(await conn.fetchval("SELECT count(*) FROM orders WHERE step <> 'DONE'"))


async def backlog(shop: Shop) -> dict[str, int]:
    """Outbox rows not yet published, per service, and analytics' units counted so far: when
    these stop moving and the outboxes are empty, the messages have all been handled."""
    found = {}
    for service in shop.databases:
        async with snapshot(shop, service) as conn:
            found[service] = int(await conn.fetchval("SELECT count(*) FROM outbox"))
    async with snapshot(shop, "analytics") as conn:
        found["analytics units"] = int(
            await conn.fetchval("SELECT coalesce(sum(quantity), 0) FROM product_daily_sales")
        )
    return found


async def wait_for_quiet(shop: Shop, *, last_fault_ended: float, limit: float) -> float | None:
    """Seconds after the last fault until no order had anything in flight; None if it never
    happened by `limit` (then the auditor reads the books as they are)."""
    deadline = last_fault_ended + limit
    while True:
        try:
            if await unsettled_orders(shop) == 0:
                return time.monotonic() - last_fault_ended
        except (OSError, asyncpg.PostgresError):
            pass
        if time.monotonic() > deadline:
            return None
        await asyncio.sleep(0.5)


async def wait_for_drain(shop: Shop, *, timeout: float) -> bool:
    """Wait until every outbox is empty and analytics stopped moving for two seconds."""
    deadline, last, steady_since = time.monotonic() + timeout, None, time.monotonic()
    while time.monotonic() < deadline:
        try:
            now = await backlog(shop)
        except (OSError, asyncpg.PostgresError):
            now = None
        if now != last:
            last, steady_since = now, time.monotonic()
        elif (
            now is not None
            and not any(v for k, v in now.items() if k in shop.databases)
            and time.monotonic() - steady_since >= 2.0
        ):
            return True
        await asyncio.sleep(0.5)
    return False


@dataclass
class Read:
    """What the auditor read, in the shapes the checker takes."""

    orders: list[OrderRow] = field(default_factory=list)
    failure_codes: Counter[str] = field(default_factory=Counter)
    wallets: dict[str, LedgerSums] = field(default_factory=dict)
    stock: dict[str, StockRow] = field(default_factory=dict)
    coupons: dict[str, CouponRow] = field(default_factory=dict)
    user_coupons: list[UserCouponRow] = field(default_factory=list)
    payments: list[PaymentRow] = field(default_factory=list)
    analytics: dict[str, tuple[int, int]] = field(default_factory=dict)
    analytics_orders: dict[str, str] = field(default_factory=dict)
    dead_letters: dict[str, int] = field(default_factory=dict)
    dead_letter_samples: list[str] = field(default_factory=list)
    dlt_messages: dict[str, int] = field(default_factory=dict)


def _order(row: asyncpg.Record) -> OrderRow:
    saga = json.loads(row["saga"]) if isinstance(row["saga"], str) else row["saga"]
    lines = tuple(
        OrderLine(str(x["product_id"]), int(x["quantity"]), int(x.get("unit_price") or 0))
        for x in saga.get("lines", ())
    )
    return OrderRow(
        id=row["id"],
        user_id=row["user_id"],
        status=row["status"],
        step=row["step"],
        total=int(saga.get("total") or 0),
        coupon_id=saga.get("coupon_id"),
        lines=lines,
    )


async def read_books(shop: Shop) -> Read:
    """Everything the checker needs, straight from the services' tables."""
    read = Read()
    async with snapshot(shop, "order") as conn:
        rows = await conn.fetch("SELECT id, user_id, status, step, saga::text AS saga FROM orders")
        read.orders = [_order(r) for r in rows]
        read.failure_codes = Counter(
            str(json.loads(r["saga"]).get("failure_code")) for r in rows if r["status"] == "FAILED"
        )
    async with snapshot(shop, "wallet") as conn:
        for r in await conn.fetch(
            "SELECT w.user_id, w.balance,"
            " coalesce(sum(t.amount) FILTER (WHERE t.type = 'CHARGE'), 0) AS charges,"
            " coalesce(sum(t.amount) FILTER (WHERE t.type = 'PAYMENT'), 0) AS payments,"
            " coalesce(sum(t.amount) FILTER (WHERE t.type = 'REFUND'), 0) AS refunds,"
            " coalesce(sum(t.amount) FILTER (WHERE t.type NOT IN ('CHARGE', 'PAYMENT', 'REFUND')),"
            " 0) AS other"
            " FROM wallets w LEFT JOIN wallet_transactions t ON t.user_id = w.user_id"
            " GROUP BY w.user_id, w.balance"
        ):
            read.wallets[r["user_id"]] = LedgerSums(
                int(r["balance"]),
                int(r["charges"]),
                int(r["payments"]),
                int(r["refunds"]),
                int(r["other"]),
            )
    async with snapshot(shop, "catalog") as conn:
        for r in await conn.fetch("SELECT product_id, available, reserved, sold FROM stock"):
            read.stock[r["product_id"]] = StockRow(r["available"], r["reserved"], r["sold"])
    async with snapshot(shop, "coupon") as conn:
        for r in await conn.fetch("SELECT id, total_quantity, issued_quantity FROM coupons"):
            read.coupons[r["id"]] = CouponRow(r["total_quantity"], r["issued_quantity"])
        read.user_coupons = [
            UserCouponRow(r["id"], r["coupon_id"], r["status"], r["order_id"])
            for r in await conn.fetch("SELECT id, coupon_id, status, order_id FROM user_coupons")
        ]
    async with snapshot(shop, "payment-mock") as conn:
        read.payments = [
            PaymentRow(r["order_id"], r["status"], int(r["amount"]))
            for r in await conn.fetch("SELECT order_id, status, amount FROM payments")
        ]
    async with snapshot(shop, "analytics") as conn:
        for r in await conn.fetch(
            "SELECT product_id, sum(quantity) AS q, sum(amount) AS a"
            " FROM product_daily_sales GROUP BY product_id"
        ):
            read.analytics[r["product_id"]] = (int(r["q"]), int(r["a"]))
        for r in await conn.fetch("SELECT order_id, status FROM sale_orders"):
            read.analytics_orders[r["order_id"]] = r["status"]
    for service in shop.databases:
        async with snapshot(shop, service) as conn:
            read.dead_letters[service] = int(
                await conn.fetchval("SELECT count(*) FROM dead_letters WHERE status = 'DEAD'")
            )
            for r in await conn.fetch(
                "SELECT consumer, topic, type, error FROM dead_letters WHERE status = 'DEAD'"
                " ORDER BY dead_at LIMIT $1",
                DEAD_LETTER_SAMPLES,
            ):
                if len(read.dead_letter_samples) < DEAD_LETTER_SAMPLES:
                    read.dead_letter_samples.append(
                        f"{service}/{r['consumer']} {r['topic']} {r['type']}: {r['error'][:200]}"
                    )
    read.dlt_messages = await dead_letter_topics(shop.infra.bootstrap, shop.namespace)
    return read


async def dead_letter_topics(bootstrap: str, namespace: str) -> dict[str, int]:
    """Messages on each of the namespace's `.dlt` topics (end minus beginning offsets)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        topics = sorted(
            t for t in await consumer.topics() if t.startswith(namespace) and t.endswith(".dlt")
        )
        counts = {}
        for topic in topics:
            partitions = [
                TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()
            ]
            first = await consumer.beginning_offsets(partitions)
            last = await consumer.end_offsets(partitions)
            counts[topic] = sum(last[tp] - first[tp] for tp in partitions)
        return counts
    finally:
        await consumer.stop()
