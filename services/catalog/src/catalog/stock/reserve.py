"""Reserving stock for a poll of ReserveStock commands: all of each command's lines or none.

Set-based where it can be: the products of every command are read in one statement and every
operation is claimed in one more. Only then are the hot stock rows touched, each command's lines
in turn, and every answer is queued together once it is known.
"""

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from catalog.domain import Status, merge_lines, short_products
from contracts.catalog import (
    ReservedLine,
    ReserveStock,
    StockReservationFailed,
    StockReserved,
)
from shopkit.db import Transaction, json_text
from shopkit.outbox import envelope, publish

Reason = Literal["OUT_OF_STOCK", "PRODUCT_NOT_FOUND"]
Reply = StockReserved | StockReservationFailed


@dataclass
class Outcome:
    """What reserving a set of lines came to."""

    lines: list[dict[str, Any]] = field(default_factory=list)
    reason: Reason | None = None
    product_ids: list[str] = field(default_factory=list)


@dataclass
class _Claim:
    """The first command of an operation in a poll: its merged lines, priced lines and answer."""

    command: ReserveStock
    wanted: dict[str, int]
    missing: list[str]
    lines: list[dict[str, Any]]
    reply: Reply


async def reserve_stocks(
    tx: Transaction,
    *,
    commands: Sequence[tuple[ReserveStock, str | None]],
    now: datetime,
) -> list[Outcome | None]:
    """Reserve every line of each command or none, and answer each (with the correlation id
    that comes with the command); a known operation only repeats its answer. Per command, its
    outcome (None for a repeat)."""
    wanted = [merge_lines((x.product_id, x.quantity) for x in c.lines) for c, _ in commands]
    # An id PostgreSQL cannot even hold (NUL) is simply not found, not a poison message.
    storable = sorted({pid for w in wanted for pid in w if "\x00" not in pid})
    products = {
        p["id"]: p
        for p in await tx.fetch(
            "SELECT id, name, category, price FROM products WHERE id = ANY($1::text[])", storable
        )
    }
    claims: dict[str, _Claim] = {}
    for (command, _), lines_wanted in zip(commands, wanted, strict=True):
        if command.operation_id not in claims:  # else re-sent within the poll: a repeat
            claims[command.operation_id] = _claim_of(command, lines_wanted, products)
    ours = await _claim_all(tx, list(claims.values()), now)
    # An operation claimed before answers what it answered; read before any hot row is locked.
    earlier = await _earlier_replies(tx, [op for op in claims if op not in ours])

    outcomes: dict[str, Outcome] = {}
    short_ops: dict[str, list[str]] = {}
    for op, claim in claims.items():
        if op not in ours:
            continue
        if claim.missing:
            outcomes[op] = Outcome(reason="PRODUCT_NOT_FOUND", product_ids=claim.missing)
            continue
        short = await take_lines(tx, claim.wanted)
        if short:
            claim.reply = _refusal(claim.command, "OUT_OF_STOCK", short)
            short_ops[op] = short
            outcomes[op] = Outcome(reason="OUT_OF_STOCK", product_ids=short)
        else:
            outcomes[op] = Outcome(lines=claim.lines)
    if short_ops:
        await _record_short(tx, short_ops)

    answered: list[Outcome | None] = []
    replies = []
    for command, correlation in commands:
        op = command.operation_id
        answered.append(outcomes.pop(op, None))  # only the first command of its operation
        reply = claims[op].reply if op in ours else earlier[op]
        replies.append(envelope(reply, correlation_id=correlation))
    await publish(tx, *replies)
    return answered


def _claim_of(command: ReserveStock, wanted: dict[str, int], products: Mapping[str, Any]) -> _Claim:
    missing = sorted(set(wanted) - set(products))
    if missing:
        return _Claim(command, wanted, missing, [], _refusal(command, "PRODUCT_NOT_FOUND", missing))
    lines = _priced(wanted, products)
    reply = StockReserved(
        order_id=command.order_id,
        operation_id=command.operation_id,
        lines=tuple(ReservedLine.model_validate(line) for line in lines),
    )
    return _Claim(command, wanted, missing, lines, reply)


async def _claim_all(tx: Transaction, claims: list[_Claim], now: datetime) -> set[str]:
    """Insert every operation's row, in one statement; the operations that are ours. One whose
    row exists is not (a concurrent claim waits for ours to commit or roll back)."""
    rows = await tx.fetch(
        _CLAIM_ALL,
        [c.command.operation_id for c in claims],
        [c.command.order_id for c in claims],
        [Status.FAILED if c.missing else Status.RESERVED for c in claims],
        ["PRODUCT_NOT_FOUND" if c.missing else None for c in claims],
        [json_text(c.missing) for c in claims],
        [json_text(c.lines) for c in claims],
        now,
    )
    return {row[0] for row in rows}


async def _record_short(tx: Transaction, short: dict[str, list[str]]) -> None:
    """Mark the operations whose lines were short (with those products) as failed, nothing
    held, in one statement."""
    await tx.execute(
        "UPDATE reservations r SET status = $2, reason = 'OUT_OF_STOCK',"
        " failed_product_ids = s.failed::jsonb, lines = '[]'"
        " FROM unnest($1::text[], $3::text[]) AS s(op, failed) WHERE r.operation_id = s.op",
        list(short),
        Status.FAILED,
        [json_text(products) for products in short.values()],
    )


async def _earlier_replies(tx: Transaction, op_ids: list[str]) -> dict[str, Reply]:
    if not op_ids:
        return {}
    rows = await tx.fetch(
        "SELECT order_id, operation_id, status, reason, failed_product_ids, lines"
        " FROM reservations WHERE operation_id = ANY($1::text[])",
        op_ids,
    )
    return {row["operation_id"]: _reply_of(row) for row in rows}


def _priced(wanted: dict[str, int], products: Mapping[str, Any]) -> list[dict[str, Any]]:
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


def _reply_of(row: Mapping[str, Any]) -> Reply:
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


def _refusal(command: ReserveStock, reason: Reason, ids: list[str]) -> StockReservationFailed:
    return StockReservationFailed(
        order_id=command.order_id,
        operation_id=command.operation_id,
        reason=reason,
        product_ids=tuple(ids),
    )


class _Short(Exception):
    pass


async def take_lines(tx: Transaction, wanted: dict[str, int]) -> list[str]:
    """Move each wanted quantity from available to reserved, all or none, in product-id order;
    the short products (none when every line was taken).

    One `UPDATE ... WHERE available >= q` per line: the row is checked and changed by the
    statement that locks it, so a hot row is held for no extra round trip."""
    try:
        # A single line needs no savepoint: its failed UPDATE changed nothing.
        async with _savepoint(tx, len(wanted) > 1):
            for pid, q in wanted.items():
                if await tx.fetchval(_TAKE, pid, q) is None:
                    raise _Short
        return []
    except _Short:
        return await _short_now(tx, wanted)


async def _short_now(tx: Transaction, wanted: dict[str, int]) -> list[str]:
    rows = await tx.fetch(
        "SELECT product_id, available FROM stock WHERE product_id = ANY($1::text[])",
        list(wanted),
    )
    # Another order may have freed units since; still name at least the line that failed.
    available = {r["product_id"]: r["available"] for r in rows}
    return short_products(wanted, available) or sorted(wanted)[:1]


def _savepoint(tx: Transaction, needed: bool) -> AbstractAsyncContextManager[Any]:
    """A SAVEPOINT around a block when `needed`: a short line undoes the lines before it."""
    return tx.transaction() if needed else nullcontext()


_TAKE = (
    "UPDATE stock SET available = available - $2, reserved = reserved + $2,"
    " version = version + 1 WHERE product_id = $1 AND available >= $2 RETURNING product_id"
)
# The operations of a poll from parallel arrays ($1 operation, $2 order, $3 status, $4 reason,
# $5 failed product ids, $6 lines, as JSON; $7 now).
_CLAIM_ALL = (
    "INSERT INTO reservations (operation_id, order_id, status, reason,"
    " failed_product_ids, lines, created_at, updated_at)"
    " SELECT o.op, o.order_id, o.status, o.reason, o.failed::jsonb, o.lines::jsonb, $7, $7"
    " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])"
    " AS o(op, order_id, status, reason, failed, lines)"
    " ON CONFLICT DO NOTHING RETURNING operation_id"
)
