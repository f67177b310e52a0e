"""The saga's stock commands: reserve all-or-nothing, release, commit, return.

Every command is answered once per operation and a replay (even under a new message id) repeats
the answer without moving stock again. Rows are always touched in product-id order, so two
reservations that share products can never deadlock.

Reserving can use one of three locking strategies; bench/catalog_bench.py measures them on a hot
product and docs/catalog.md records why `STRATEGY` is the one the service uses.
"""

import asyncio
import logging
import random
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import asyncpg
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.domain import (
    Status,
    capped_returns,
    merge_lines,
    on_commit,
    on_release,
    short_products,
)
from catalog.models import OrderSale, Reservation, Stock, StockReturn
from contracts.catalog import (
    CommitStock,
    ReleaseStock,
    ReservedLine,
    ReserveStock,
    ReturnStock,
    StockReleased,
    StockReservationFailed,
    StockReserved,
    StockReturned,
)
from shopkit.db import driver, json_text
from shopkit.outbox import (
    NOTIFY_CHANNEL,
    add_message,
    envelope_arrays,
    envelope_for,
    outbox_insert,
    queue_message,
)

log = logging.getLogger("catalog.stock")

Strategy = Literal["conditional", "pessimistic", "optimistic"]
STRATEGY: Strategy = "conditional"
OPTIMISTIC_ATTEMPTS = 50


class StockContention(Exception):
    """Optimistic locking lost every attempt; the consumer retries the whole message."""


@dataclass
class Outcome:
    """What reserving a set of lines came to; `retries` counts optimistic conflicts."""

    lines: list[dict[str, Any]] = field(default_factory=list)
    reason: Literal["OUT_OF_STOCK", "PRODUCT_NOT_FOUND"] | None = None
    product_ids: list[str] = field(default_factory=list)
    retries: int = 0


async def reserve_stock(
    conn: asyncpg.Connection,
    *,
    command: ReserveStock,
    now: datetime,
    strategy: Strategy = STRATEGY,
) -> Outcome | None:
    """`reserve_stocks` of one command."""
    [outcome] = await reserve_stocks(conn, commands=[(command, None)], now=now, strategy=strategy)
    return outcome


@dataclass
class _Claim:
    """One command of a batch on its way: its merged lines, priced lines and answer."""

    command: ReserveStock
    correlation: str | None
    wanted: dict[str, int]
    missing: list[str]
    lines: list[dict[str, Any]]
    reply: StockReserved | StockReservationFailed
    message_id: Any = None  # its queued answer's, once claimed


async def reserve_stocks(
    conn: asyncpg.Connection,
    *,
    commands: Sequence[tuple[ReserveStock, str | None]],
    now: datetime,
    strategy: Strategy = STRATEGY,
) -> list[Outcome | None]:
    """Reserve every line of each command or none, and answer each (with the correlation id
    that comes with the command); a known operation only repeats its answer. Per command, its
    outcome (None for a repeat).

    Set-based where it can be, on the connection of the caller's transaction (the consumer's
    `raw_transaction` for a poll): the products of all commands are read in one statement and
    every operation claimed, with its answer queued, in one more. Only then are the hot stock
    rows touched, each command's lines in turn with `strategy`: from their UPDATE to COMMIT
    nothing but the next commands' UPDATEs runs, so a hot row stays locked as short as
    possible. A command whose lines are short has its queued answer replaced."""
    wanted = [merge_lines((x.product_id, x.quantity) for x in c.lines) for c, _ in commands]
    # An id PostgreSQL cannot even hold (NUL) is simply not found, not a poison message.
    storable = sorted({pid for w in wanted for pid in w if "\x00" not in pid})
    products = {
        p["id"]: p
        for p in await conn.fetch(
            "SELECT id, name, category, price FROM products WHERE id = ANY($1::text[])", storable
        )
    }
    claims: dict[str, _Claim] = {}  # the first command of each operation
    for (command, correlation), lines_wanted in zip(commands, wanted, strict=True):
        if command.operation_id in claims:
            continue  # re-sent within the batch: answered below as a repeat
        missing = sorted(set(lines_wanted) - set(products))
        lines = [] if missing else _priced(lines_wanted, products)
        reply: StockReserved | StockReservationFailed = (
            _reserve_reply_for(command, "PRODUCT_NOT_FOUND", missing)
            if missing
            else StockReserved(
                order_id=command.order_id,
                operation_id=command.operation_id,
                lines=tuple(ReservedLine.model_validate(line) for line in lines),
            )
        )
        claims[command.operation_id] = _Claim(
            command, correlation, lines_wanted, missing, lines, reply
        )
    await _claim_all(conn, list(claims.values()), now)

    outcomes: dict[str, Outcome] = {}
    reserve = {
        "conditional": _reserve_conditional,
        "pessimistic": _reserve_pessimistic,
        "optimistic": _reserve_optimistic,
    }[strategy]
    for claim in claims.values():
        if claim.message_id is None:
            continue  # claimed before: a repeat
        op = claim.command.operation_id
        if claim.missing:
            outcomes[op] = Outcome(reason="PRODUCT_NOT_FOUND", product_ids=claim.missing)
            continue
        short, retries = await reserve(conn, claim.wanted)
        if not short:
            outcomes[op] = Outcome(lines=claim.lines, retries=retries)
            continue
        await conn.execute("DELETE FROM outbox WHERE message_id = $1", claim.message_id)
        await conn.execute(
            "UPDATE reservations SET status = $2, reason = 'OUT_OF_STOCK',"
            " failed_product_ids = $3, lines = '[]' WHERE operation_id = $1",
            op,
            Status.FAILED,
            json_text(short),
        )
        await queue_message(
            conn,
            _reserve_reply_for(claim.command, "OUT_OF_STOCK", short),
            correlation_id=claim.correlation,
        )
        outcomes[op] = Outcome(reason="OUT_OF_STOCK", product_ids=short, retries=retries)

    # Repeats (claimed before, or twice in this batch) answer what their operation answered,
    # as it stands now.
    answered: list[Outcome | None] = []
    for command, correlation in commands:
        op = command.operation_id
        if op in outcomes:
            answered.append(outcomes.pop(op))  # the first command of its operation
            continue
        row = await conn.fetchrow(
            "SELECT order_id, operation_id, status, reason, failed_product_ids, lines"
            " FROM reservations WHERE operation_id = $1",
            op,
        )
        assert row is not None
        await queue_message(conn, _reserve_reply(row), correlation_id=correlation)
        answered.append(None)
    return answered


async def _claim_all(conn: asyncpg.Connection, claims: list[_Claim], now: datetime) -> None:
    """Insert every operation's row and queue its answer, in one statement, for those that are
    ours (`message_id` set); an operation whose row exists is not (a concurrent claim waits
    for ours)."""
    outbox = envelope_arrays(
        [(c.reply.TOPIC.name, envelope_for(c.reply, correlation_id=c.correlation)) for c in claims]
    )
    failed = [c.missing for c in claims]
    claimed = {
        row[0]
        for row in await conn.fetch(
            _CLAIM_ALL_AND_QUEUE,
            [c.command.operation_id for c in claims],
            [c.command.order_id for c in claims],
            [Status.FAILED if c.missing else Status.RESERVED for c in claims],
            ["PRODUCT_NOT_FOUND" if c.missing else None for c in claims],
            [json_text(f) for f in failed],
            [json_text(c.lines) for c in claims],
            now,
            *outbox,
        )
    }
    for claim, message_id in zip(claims, outbox[0], strict=True):
        if claim.command.operation_id in claimed:
            claim.message_id = message_id


def _priced(wanted: dict[str, int], products: dict[str, Any]) -> list[dict[str, Any]]:
    """The lines at today's prices, names and categories: what the order will be charged."""
    return [
        ReservedLine(
            product_id=pid,
            quantity=q,
            unit_price=products[pid]["price"],
            name=products[pid]["name"],
            category=products[pid]["category"],
        ).model_dump()
        for pid, q in wanted.items()
    ]


def _reserve_reply(row: Mapping[str, Any]) -> StockReserved | StockReservationFailed:
    """The answer a claimed operation gave (its `reservations` row), for a re-sent command."""
    if row["status"] in (Status.RESERVED, Status.RELEASED, Status.COMMITTED):
        lines = tuple(ReservedLine.model_validate(line) for line in row["lines"])
        return StockReserved(
            order_id=row["order_id"], operation_id=row["operation_id"], lines=lines
        )
    # A VOIDED operation was released before it arrived: refused, and nothing is held.
    reason = "PRODUCT_NOT_FOUND" if row["reason"] == "PRODUCT_NOT_FOUND" else "OUT_OF_STOCK"
    return StockReservationFailed(
        order_id=row["order_id"],
        operation_id=row["operation_id"],
        reason=reason,
        product_ids=tuple(row["failed_product_ids"]),
    )


def _reserve_reply_for(
    command: ReserveStock, reason: Literal["OUT_OF_STOCK", "PRODUCT_NOT_FOUND"], ids: list[str]
) -> StockReservationFailed:
    return StockReservationFailed(
        order_id=command.order_id,
        operation_id=command.operation_id,
        reason=reason,
        product_ids=tuple(ids),
    )


class _Short(Exception):
    pass


async def _reserve_conditional(
    conn: asyncpg.Connection, wanted: dict[str, int]
) -> tuple[list[str], int]:
    """One `UPDATE ... WHERE available >= q` per line; a line that matches nothing is short."""
    try:
        # A single line needs no savepoint: its failed UPDATE changed nothing.
        async with _savepoint(conn, len(wanted) > 1):
            for pid, q in wanted.items():
                if not await _take(conn, pid, q, if_available=True):
                    raise _Short
        return [], 0
    except _Short:
        return await _short_now(conn, wanted), 0


async def _reserve_pessimistic(
    conn: asyncpg.Connection, wanted: dict[str, int]
) -> tuple[list[str], int]:
    """Lock the stock rows (FOR UPDATE, id order), check them all, then update."""
    rows = await conn.fetch(
        "SELECT product_id, available FROM stock WHERE product_id = ANY($1::text[])"
        " ORDER BY product_id FOR UPDATE",
        list(wanted),
    )
    short = short_products(wanted, {r["product_id"]: r["available"] for r in rows})
    if short:
        return short, 0
    for pid, q in wanted.items():
        await _take(conn, pid, q)
    return [], 0


async def _reserve_optimistic(
    conn: asyncpg.Connection, wanted: dict[str, int]
) -> tuple[list[str], int]:
    """Read without locks, then update only if each row's version is unchanged; else retry."""
    for attempt in range(OPTIMISTIC_ATTEMPTS):
        rows = await conn.fetch(
            "SELECT product_id, available, version FROM stock WHERE product_id = ANY($1::text[])",
            list(wanted),
        )
        short = short_products(wanted, {r["product_id"]: r["available"] for r in rows})
        if short:
            return short, attempt
        versions = {r["product_id"]: r["version"] for r in rows}
        try:
            async with _savepoint(conn, len(wanted) > 1):
                for pid, q in wanted.items():
                    if not await _take(conn, pid, q, if_version=versions[pid]):
                        raise _Short
            return [], attempt
        except _Short:
            # Someone changed a row since we read it: back off a little, with jitter, and retry.
            await asyncio.sleep(random.uniform(0, 0.002 * (attempt + 1)))
    raise StockContention(f"optimistic reservation lost {OPTIMISTIC_ATTEMPTS} times")


async def _take(
    conn: asyncpg.Connection,
    product_id: str,
    quantity: int,
    *,
    if_available: bool = False,
    if_version: int | None = None,
) -> bool:
    """Move `quantity` from available to reserved; False when a condition did not hold.

    Once per line of every order: one statement text for every strategy."""
    taken = await conn.fetchval(
        "UPDATE stock SET available = available - $2, reserved = reserved + $2,"
        " version = version + 1 WHERE product_id = $1"
        " AND (NOT $3::bool OR available >= $2) AND ($4::bigint IS NULL OR version = $4)"
        " RETURNING product_id",
        product_id,
        quantity,
        if_available,
        if_version,
    )
    return taken is not None


async def _short_now(conn: asyncpg.Connection, wanted: dict[str, int]) -> list[str]:
    rows = await conn.fetch(
        "SELECT product_id, available FROM stock WHERE product_id = ANY($1::text[])",
        list(wanted),
    )
    # Another order may have freed units since; still name at least the line that failed.
    available = {r["product_id"]: r["available"] for r in rows}
    return short_products(wanted, available) or sorted(wanted)[:1]


def _savepoint(conn: asyncpg.Connection, needed: bool) -> AbstractAsyncContextManager[Any]:
    """A SAVEPOINT around a block when `needed`: a short line undoes the lines before it."""
    return conn.transaction() if needed else nullcontext()


async def release_stock(session: AsyncSession, *, command: ReleaseStock, now: datetime) -> None:
    """Give the operation's reserved units back once; a Release before its Reserve voids it."""
    claimed = await _claim(
        await driver(session), command.operation_id, command.order_id, now, status=Status.VOIDED
    )
    if not claimed:
        row = await session.get(
            Reservation, command.operation_id, with_for_update=True, populate_existing=True
        )
        assert row is not None
        step = on_release(Status(row.status))
        if step.moves_stock:
            for line in sorted(row.lines, key=lambda line: line["product_id"]):
                await session.execute(
                    update(Stock)
                    .where(Stock.product_id == line["product_id"])
                    .values(
                        available=Stock.available + line["quantity"],
                        reserved=Stock.reserved - line["quantity"],
                        version=Stock.version + 1,
                    )
                )
        row.status, row.updated_at = step.status, now
    await add_message(
        session, StockReleased(order_id=command.order_id, operation_id=command.operation_id)
    )


async def commit_stock(
    conn: asyncpg.Connection, *, commands: Sequence[CommitStock], now: datetime
) -> None:
    """Turn each operation's reserved units into sold, once, on the connection of the caller's
    transaction. No reply: the saga does not wait for it (a commit of held units cannot fail),
    and a later ReturnStock of the same order comes after it on the same partition.

    Set-based, for a poll of commits: two statements however many there are."""
    # The one transition that moves stock, taken in the statement that reads the rows (a read
    # FOR UPDATE and a write before); from any other status a commit changes nothing.
    committed = on_commit(Status.RESERVED)
    op_ids = sorted({command.operation_id for command in commands})
    rows = await conn.fetch(
        "UPDATE reservations SET status = $2, updated_at = $3"
        " WHERE operation_id = ANY($1::text[]) AND status = $4"
        " RETURNING operation_id, order_id, lines",
        op_ids,
        committed.status,
        now,
        Status.RESERVED,
    )
    if len(rows) < len(op_ids):
        await _commit_nothing(conn, set(op_ids) - {row["operation_id"] for row in rows})
    # Stock rows in product-id order, as a reservation locks them; each line's sale with it.
    sold = sorted(
        (line["product_id"], row["order_id"], line["quantity"])
        for row in rows
        for line in row["lines"]
    )
    if sold:
        await conn.executemany(
            "WITH sold AS (UPDATE stock SET reserved = reserved - $3, sold = sold + $3,"
            " version = version + 1 WHERE product_id = $2)"
            " INSERT INTO order_sales (order_id, product_id, sold) VALUES ($1, $2, $3)"
            " ON CONFLICT (order_id, product_id) DO UPDATE"
            " SET sold = order_sales.sold + EXCLUDED.sold",
            [(order_id, pid, quantity) for pid, order_id, quantity in sold],
        )


async def _commit_nothing(conn: asyncpg.Connection, op_ids: set[str]) -> None:
    """Commits of operations that are not RESERVED change nothing; only a repeat is normal."""
    found = dict(
        await conn.fetch(
            "SELECT operation_id, status FROM reservations WHERE operation_id = ANY($1::text[])",
            sorted(op_ids),
        )
    )
    for op_id in sorted(op_ids):
        status = found.get(op_id)
        if status is None:
            log.warning("commit of an unknown stock operation %s", op_id)
        elif status != Status.COMMITTED:
            log.warning("commit of a %s stock operation", status)


async def return_stock(session: AsyncSession, *, command: ReturnStock, now: datetime) -> None:
    """Put sold units back on the shelf, never more than the order holds as sold."""
    claimed = await session.execute(
        insert(StockReturn)
        .values(
            operation_id=command.operation_id, order_id=command.order_id, lines={}, created_at=now
        )
        .on_conflict_do_nothing()
        .returning(StockReturn.operation_id)
    )
    if claimed.scalar_one_or_none() is not None:
        requested = merge_lines((line.product_id, line.quantity) for line in command.lines)
        sales = await session.execute(
            select(OrderSale.product_id, OrderSale.sold)
            .where(OrderSale.order_id == command.order_id, OrderSale.product_id.in_(requested))
            .order_by(OrderSale.product_id)
            .with_for_update()
        )
        returned = capped_returns(requested, {pid: sold for pid, sold in sales.all()})
        for pid, q in returned.items():
            await session.execute(
                update(OrderSale)
                .where(OrderSale.order_id == command.order_id, OrderSale.product_id == pid)
                .values(sold=OrderSale.sold - q)
            )
            await session.execute(
                update(Stock)
                .where(Stock.product_id == pid)
                .values(
                    available=Stock.available + q, sold=Stock.sold - q, version=Stock.version + 1
                )
            )
        await session.execute(
            update(StockReturn)
            .where(StockReturn.operation_id == command.operation_id)
            .values(lines=returned)
        )
    await add_message(
        session, StockReturned(order_id=command.order_id, operation_id=command.operation_id)
    )


async def _claim(
    conn: asyncpg.Connection, operation_id: str, order_id: str, now: datetime, *, status: str
) -> bool:
    """Insert the operation's row with `status` and nothing held; False when it exists (a
    concurrent claim waits for ours)."""
    claimed = await conn.fetchval(
        _CLAIM, operation_id, order_id, status, None, json_text([]), json_text([]), now
    )
    return claimed is not None


_CLAIM = (
    "INSERT INTO reservations (operation_id, order_id, status, reason, failed_product_ids,"
    " lines, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)"
    " ON CONFLICT DO NOTHING RETURNING operation_id"
)
# The operations of a batch from parallel arrays ($1 operation, $2 order, $3 status, $4 reason,
# $5 failed product ids, $6 lines, as JSON; $7 now), and each one's answer (the outbox arrays
# from $8, one per operation, in the same order) queued only if its row is new.
_CLAIM_ALL_AND_QUEUE = (
    "WITH claimed AS (INSERT INTO reservations (operation_id, order_id, status, reason,"
    " failed_product_ids, lines, created_at, updated_at)"
    " SELECT o.op, o.order_id, o.status, o.reason, o.failed::jsonb, o.lines::jsonb, $7, $7"
    " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])"
    " AS o(op, order_id, status, reason, failed, lines)"
    " ON CONFLICT DO NOTHING RETURNING operation_id),"
    f" queued AS ({outbox_insert(8, where='($1::text[])[q.n] IN (SELECT operation_id FROM claimed)')})"
    f" SELECT operation_id, pg_notify('{NOTIFY_CHANNEL}', '') FROM claimed"
)
