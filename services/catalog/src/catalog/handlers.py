"""Saga commands the catalog consumes; all but CommitStock are answered on catalog.replies."""

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

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


@consumer.handles(ReleaseStock)
async def on_release(session: AsyncSession, command: ReleaseStock, _: Envelope) -> None:
    await stock.release_stock(session, command=command, now=system_clock())


@consumer.handles_batch(CommitStock)
async def on_commits(
    conn: asyncpg.Connection, commands: list[tuple[CommitStock, Envelope]]
) -> None:
    await stock.commit_stock(conn, commands=[c for c, _ in commands], now=system_clock())


@consumer.handles(ReturnStock)
async def on_return(session: AsyncSession, command: ReturnStock, _: Envelope) -> None:
    await stock.return_stock(session, command=command, now=system_clock())
