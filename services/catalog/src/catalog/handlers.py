"""Saga commands the catalog consumes; all but CommitStock are answered on catalog.replies."""

import asyncpg

from catalog import stock
from contracts import Envelope
from contracts.catalog import CommitStock, ReleaseStock, ReserveStock, ReturnStock
from shopkit.clock import system_clock
from shopkit.messaging import Consumer

consumer = Consumer("catalog")


@consumer.handles_batch(ReserveStock)
async def on_reserves(
    conn: asyncpg.Connection, commands: list[tuple[ReserveStock, Envelope]]
) -> None:
    await stock.reserve_stocks(
        conn,
        commands=[(c, envelope.correlation_id) for c, envelope in commands],
        now=system_clock(),
    )


@consumer.handles_raw(ReleaseStock)
async def on_release(conn: asyncpg.Connection, command: ReleaseStock, _: Envelope) -> None:
    await stock.release_stock(conn, command=command, now=system_clock())


@consumer.handles_batch(CommitStock)
async def on_commits(
    conn: asyncpg.Connection, commands: list[tuple[CommitStock, Envelope]]
) -> None:
    await stock.commit_stock(conn, commands=[c for c, _ in commands], now=system_clock())


@consumer.handles_raw(ReturnStock)
async def on_return(conn: asyncpg.Connection, command: ReturnStock, _: Envelope) -> None:
    await stock.return_stock(conn, command=command, now=system_clock())
