"""The saga's stock commands over real Kafka and PostgreSQL: all-or-nothing, once, never oversold."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import asyncpg
import httpx
import pytest

from catalog import stock
from catalog.main import build_app
from catalog.settings import Settings
from contracts import Message
from contracts.catalog import (
    CommitStock,
    ReleaseStock,
    ReserveStock,
    ReturnStock,
    StockLine,
)
from shopdev.testing import KafkaProbe, poll, serve
from shopkit.clock import system_clock
from shopkit.db import Database, asyncpg_dsn
from shopkit.outbox import envelope as envelope_of

REPLIES = "catalog.replies"


@pytest.fixture(scope="session")
async def pg(catalog_db: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(asyncpg_dsn(catalog_db))
    yield conn
    await conn.close()


async def quantities(pg: asyncpg.Connection, product_id: str) -> tuple[int, int, int]:
    row = await pg.fetchrow(
        "SELECT available, reserved, sold FROM stock WHERE product_id = $1", product_id
    )
    return row["available"], row["reserved"], row["sold"]


def reserve(order_id: str, op: str, *lines: tuple[str, int]) -> ReserveStock:
    return ReserveStock(
        order_id=order_id,
        operation_id=op,
        lines=tuple(StockLine(product_id=p, quantity=q) for p, q in lines),
    )


async def reserve_one(
    conn: asyncpg.Connection, command: ReserveStock, now: datetime
) -> stock.Outcome | None:
    [outcome] = await stock.reserve_stocks(conn, commands=[(command, None)], now=now)
    return outcome


async def replies_for(kafka: KafkaProbe, op: str, count: int = 1) -> list[dict[str, Any]]:
    found = await kafka.wait_for(
        REPLIES, lambda e: e["payload"].get("operation_id") == op, count=count
    )
    return found


async def answer(kafka: KafkaProbe, command: Message) -> dict[str, Any]:
    """Send one command and wait for its reply (the newest one for its operation and type)."""
    op = command.operation_id  # type: ignore[attr-defined]
    before = len(
        [
            e
            for e in await kafka.read_all(REPLIES, idle_ms=100)
            if e["payload"].get("operation_id") == op
        ]
    )
    await kafka.publish(command)
    found = await replies_for(kafka, op, count=before + 1)
    return found[-1]


async def test_100_concurrent_reservations_of_a_stock_of_10_reserve_exactly_10(
    catalog: httpx.AsyncClient,
    catalog_settings: Settings,
    create_product,
    kafka: KafkaProbe,
    pg: asyncpg.Connection,
) -> None:
    product = await create_product(stock=10)
    ops = [f"op-{uuid.uuid4()}" for _ in range(100)]
    commands = [reserve(str(uuid.uuid4()), op, (product["id"], 1)) for op in ops]

    # A second replica in the same consumer group: partitions are split, so the two consume
    # (and fight for the hot row) concurrently.
    async with serve(build_app(catalog_settings)):
        await kafka.publish_many(commands)
        wanted = set(ops)

        async def answered() -> list[dict[str, Any]]:
            return [
                e
                for e in await kafka.read_all(REPLIES, idle_ms=200)
                if e["payload"].get("operation_id") in wanted
            ]

        replies = await poll(answered, until=lambda r: len(r) >= 100, timeout=60)

    types = [r["type"] for r in replies]
    assert len(replies) == 100
    assert types.count("StockReserved") == 10
    assert types.count("StockReservationFailed") == 90
    failures = [r["payload"] for r in replies if r["type"] == "StockReservationFailed"]
    assert {(f["reason"], tuple(f["product_ids"])) for f in failures} == {
        ("OUT_OF_STOCK", (product["id"],))
    }
    assert await quantities(pg, product["id"]) == (0, 10, 0)
    detail = (await catalog.get(f"/api/products/{product['id']}")).json()
    assert (detail["stock"], detail["sold_out"]) == (0, True)


async def test_concurrent_reservations_never_oversell(
    catalog_db: str, create_product, pg: asyncpg.Connection
) -> None:
    product = await create_product(stock=10)
    db = Database(catalog_db, pool_size=10)
    now = await pg.fetchval("SELECT now()")

    async def one() -> stock.Outcome | None:
        async with db.transaction() as conn:
            command = reserve(str(uuid.uuid4()), str(uuid.uuid4()), (product["id"], 1))
            return await reserve_one(conn, command, now)

    try:
        outcomes = await asyncio.gather(*[one() for _ in range(50)])
    finally:
        await db.dispose()
    assert sum(1 for o in outcomes if o and o.reason is None) == 10
    assert await quantities(pg, product["id"]) == (0, 10, 0)


async def test_a_multi_line_reservation_with_one_short_line_reserves_nothing(
    catalog: httpx.AsyncClient, create_product, kafka: KafkaProbe, pg: asyncpg.Connection
) -> None:
    # Ids sort so that the short line comes last: the lines before it must be undone.
    plenty = await create_product(stock=50)
    also = await create_product(stock=50)
    short = await create_product(stock=2)
    lines = [(plenty["id"], 5), (also["id"], 5), (short["id"], 3)]

    reply = await answer(kafka, reserve(str(uuid.uuid4()), f"op-{uuid.uuid4()}", *lines))

    assert reply["type"] == "StockReservationFailed"
    assert reply["payload"]["reason"] == "OUT_OF_STOCK"
    assert reply["payload"]["product_ids"] == [short["id"]]
    assert await quantities(pg, plenty["id"]) == (50, 0, 0)
    assert await quantities(pg, also["id"]) == (50, 0, 0)
    assert await quantities(pg, short["id"]) == (2, 0, 0)


async def test_an_unknown_product_fails_the_whole_reservation(
    catalog: httpx.AsyncClient, create_product, kafka: KafkaProbe, pg: asyncpg.Connection
) -> None:
    product = await create_product(stock=5)
    ghost = str(uuid.uuid4())

    reply = await answer(
        kafka, reserve(str(uuid.uuid4()), f"op-{uuid.uuid4()}", (product["id"], 1), (ghost, 1))
    )

    assert (reply["type"], reply["payload"]["reason"]) == (
        "StockReservationFailed",
        "PRODUCT_NOT_FOUND",
    )
    assert reply["payload"]["product_ids"] == [ghost]
    assert await quantities(pg, product["id"]) == (5, 0, 0)


async def test_a_duplicated_command_is_applied_once(
    catalog: httpx.AsyncClient, create_product, kafka: KafkaProbe, pg: asyncpg.Connection
) -> None:
    product = await create_product(stock=10, price=7_000, name="중복 테스트", category="FOOD")
    command = reserve(str(uuid.uuid4()), f"op-{uuid.uuid4()}", (product["id"], 3))
    envelope = envelope_of(command)

    await kafka.publish(command, envelope=envelope)
    await kafka.publish(command, envelope=envelope)  # the same message delivered twice
    first = await replies_for(kafka, command.operation_id)
    again = await answer(kafka, command)  # the saga re-sends: same operation, new message id

    assert first[0]["payload"]["lines"] == [
        {
            "product_id": product["id"],
            "quantity": 3,
            "unit_price": 7_000,
            "name": "중복 테스트",
            "category": "FOOD",
        }
    ]
    assert again["type"] == "StockReserved"
    assert again["payload"] == first[0]["payload"]
    assert len(await replies_for(kafka, command.operation_id, count=2)) == 2
    assert await quantities(pg, product["id"]) == (7, 3, 0)


async def test_listing_and_detail_show_exact_stock_through_the_saga(
    catalog: httpx.AsyncClient, create_product, kafka: KafkaProbe, pg: asyncpg.Connection, tag: str
) -> None:
    product = await create_product(name=f"{tag} lifecycle", stock=10)
    pid, order = product["id"], str(uuid.uuid4())

    async def shown() -> tuple[int, int]:
        detail = (await catalog.get(f"/api/products/{pid}")).json()
        [listed] = (await catalog.get("/api/products", params={"q": tag})).json()["items"]
        return detail["stock"], listed["stock"]

    first, second = f"op-{uuid.uuid4()}", f"op-{uuid.uuid4()}"
    assert (await answer(kafka, reserve(order, first, (pid, 3))))["type"] == "StockReserved"
    assert await shown() == (7, 7)
    assert (await answer(kafka, ReleaseStock(order_id=order, operation_id=first)))["type"] == (
        "StockReleased"
    )
    assert await shown() == (10, 10)
    await answer(kafka, reserve(order, second, (pid, 4)))
    await kafka.publish(CommitStock(order_id=order, operation_id=second))  # one-way: no reply
    await poll(lambda: quantities(pg, pid), until=lambda q: q == (6, 0, 4))
    assert await shown() == (6, 6)

    # Replays change nothing: the release of a committed operation keeps the sold units sold.
    # (The commit has no reply; the release after it on the same key answers after it.)
    # Nor does a commit of the released operation.
    await answer(kafka, ReleaseStock(order_id=order, operation_id=first))
    await kafka.publish(CommitStock(order_id=order, operation_id=second))
    await kafka.publish(CommitStock(order_id=order, operation_id=first))
    await answer(kafka, ReleaseStock(order_id=order, operation_id=second))
    assert await quantities(pg, pid) == (6, 0, 4)

    # A modify lowers the line by 1, then a cancel returns the rest (asking for more is capped).
    lower = ReturnStock(
        order_id=order,
        operation_id=f"ret-{uuid.uuid4()}",
        lines=(StockLine(product_id=pid, quantity=1),),
    )
    assert (await answer(kafka, lower))["type"] == "StockReturned"
    await answer(kafka, lower)
    assert await quantities(pg, pid) == (7, 0, 3)
    cancel = ReturnStock(
        order_id=order,
        operation_id=f"ret-{uuid.uuid4()}",
        lines=(StockLine(product_id=pid, quantity=4),),
    )
    await answer(kafka, cancel)
    assert await quantities(pg, pid) == (10, 0, 0)
    assert await shown() == (10, 10)


async def test_a_release_before_its_reserve_voids_the_reservation(
    catalog: httpx.AsyncClient, create_product, kafka: KafkaProbe, pg: asyncpg.Connection
) -> None:
    product = await create_product(stock=5)
    order, op = str(uuid.uuid4()), f"op-{uuid.uuid4()}"

    released = await answer(kafka, ReleaseStock(order_id=order, operation_id=op))
    late = await answer(kafka, reserve(order, op, (product["id"], 2)))

    assert released["type"] == "StockReleased"
    assert late["type"] == "StockReservationFailed"
    assert await quantities(pg, product["id"]) == (5, 0, 0)


async def test_orders_sharing_products_in_any_line_order_never_deadlock(
    catalog_db: str, create_product, pg: asyncpg.Connection
) -> None:
    a, b = await create_product(stock=10), await create_product(stock=10)
    db = Database(catalog_db, pool_size=10)
    now = await pg.fetchval("SELECT now()")

    async def one(i: int) -> stock.Outcome | None:
        lines = [(a["id"], 1), (b["id"], 1)]
        # Half the orders list the lines the other way round.
        command = reserve(str(uuid.uuid4()), str(uuid.uuid4()), *(lines[::-1] if i % 2 else lines))
        async with db.transaction() as conn:
            return await reserve_one(conn, command, now)

    try:
        outcomes = await asyncio.gather(*[one(i) for i in range(40)])
    finally:
        await db.dispose()
    assert sum(1 for o in outcomes if o and o.reason is None) == 10
    assert await quantities(pg, a["id"]) == await quantities(pg, b["id"]) == (0, 10, 0)


async def test_a_poll_of_commits_sells_each_reservation_once(
    create_product, pg: asyncpg.Connection, catalog_db: str
) -> None:
    """Commits taken together (set-based): every line of every reserved operation is sold once,
    two operations of one order on one product add up, and a repeat in the same batch or a
    commit of an operation never reserved changes nothing."""
    pen, ink = (await create_product(stock=10))["id"], (await create_product(stock=10))["id"]
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    now = system_clock()
    db = Database(catalog_db)  # the service's connections: JSON columns decoded
    async with db.transaction() as conn:
        await reserve_one(conn, reserve(a, f"{a}:s", (pen, 2), (ink, 1)), now)
        await reserve_one(conn, reserve(b, f"{b}:s", (pen, 3)), now)
        await reserve_one(conn, reserve(a, f"{a}:m", (pen, 1)), now)
    assert await quantities(pg, pen) == (4, 6, 0)

    commits = [
        CommitStock(order_id=a, operation_id=f"{a}:s"),
        CommitStock(order_id=b, operation_id=f"{b}:s"),
        CommitStock(order_id=a, operation_id=f"{a}:s"),  # the same commit twice in one poll
        CommitStock(order_id=a, operation_id=f"{a}:never-reserved"),
        CommitStock(order_id=a, operation_id=f"{a}:m"),  # the order's second operation
    ]
    async with db.transaction() as conn:
        await stock.commit_stock(conn, commands=commits, now=now)
    await db.dispose()

    assert await quantities(pg, pen) == (4, 0, 6)
    assert await quantities(pg, ink) == (9, 0, 1)
    sales = await pg.fetch(
        "SELECT order_id, product_id, sold FROM order_sales WHERE order_id = ANY($1)", [a, b]
    )
    assert sorted(tuple(r) for r in sales) == sorted([(a, pen, 3), (a, ink, 1), (b, pen, 3)])


async def test_a_poll_of_reservations_is_claimed_together_and_taken_in_order(
    create_product, pg: asyncpg.Connection, catalog_db: str, kafka: KafkaProbe
) -> None:
    """Reservations taken together (set-based): the first order gets the last units, the next
    one is short and nothing of it is held; a repeat in the batch and one of an earlier
    operation answer as their operation did; every answer carries its command's correlation."""
    pen = (await create_product(stock=3))["id"]
    a, b, c, d = (str(uuid.uuid4()) for _ in range(4))
    now = system_clock()
    db = Database(catalog_db)
    async with db.transaction() as conn:
        await reserve_one(conn, reserve(d, f"{d}:s", (pen, 1)), now)
    assert await quantities(pg, pen) == (2, 1, 0)

    commands = [
        (reserve(a, f"{a}:s", (pen, 2)), "c-a"),
        (reserve(b, f"{b}:s", (pen, 1)), "c-b"),  # nothing left for it
        (reserve(a, f"{a}:s", (pen, 2)), "c-a-again"),  # re-sent within the batch
        (reserve(c, f"{c}:s", ("no-such-product", 1)), "c-c"),
        (reserve(d, f"{d}:s", (pen, 1)), "c-d"),  # claimed before
    ]
    async with db.transaction() as conn:
        outcomes = await stock.reserve_stocks(conn, commands=commands, now=now)
    await db.dispose()

    assert await quantities(pg, pen) == (0, 3, 0)
    assert [o.reason if o else None for o in outcomes] == [
        None,
        "OUT_OF_STOCK",
        None,
        "PRODUCT_NOT_FOUND",
        None,
    ]
    assert outcomes[0] is not None and outcomes[0].lines
    statuses = dict(
        await pg.fetch(
            "SELECT order_id, status FROM reservations WHERE order_id = ANY($1)", [a, b, c, d]
        )
    )
    assert statuses == {a: "RESERVED", b: "FAILED", c: "FAILED", d: "RESERVED"}
    # The relay deletes what it sent: the answers are read where they went, on Kafka.
    found = await kafka.wait_for(
        REPLIES,
        lambda e: e["key"] in (a, b, c, d) and (e["correlation_id"] or "").startswith("c-"),
        count=5,
    )
    replies = [{"corr": e["correlation_id"], "type": e["type"]} for e in found]
    assert sorted((r["corr"], r["type"]) for r in replies) == sorted(
        [
            ("c-a", "StockReserved"),
            ("c-b", "StockReservationFailed"),
            ("c-a-again", "StockReserved"),
            ("c-c", "StockReservationFailed"),
            ("c-d", "StockReserved"),
        ]
    )
    # One order's answers in the order its commands came.
    assert [r["corr"] for r in replies if r["corr"].startswith("c-a")] == ["c-a", "c-a-again"]
