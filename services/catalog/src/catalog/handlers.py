"""Saga commands the catalog consumes; all but CommitStock are answered on catalog.replies."""

from catalog import stock
from contracts import Envelope
from contracts.catalog import CommitStock, ReleaseStock, ReserveStock, ReturnStock
from shopkit.clock import system_clock
from shopkit.db import Transaction
from shopkit.messaging import Consumer, each

consumer = Consumer("catalog")


@consumer.handles(ReserveStock)
async def on_reserves(tx: Transaction, batch: list[tuple[ReserveStock, Envelope]]) -> None:
    commands = [(command, envelope.correlation_id) for command, envelope in batch]
    await stock.reserve_stocks(tx, commands=commands, now=system_clock())


@consumer.handles(ReleaseStock)
@each
async def on_release(tx: Transaction, command: ReleaseStock, _: Envelope) -> None:
    await stock.release_stock(tx, command=command, now=system_clock())


@consumer.handles(CommitStock)
async def on_commits(tx: Transaction, batch: list[tuple[CommitStock, Envelope]]) -> None:
    await stock.commit_stock(tx, commands=[c for c, _ in batch], now=system_clock())


@consumer.handles(ReturnStock)
@each
async def on_return(tx: Transaction, command: ReturnStock, _: Envelope) -> None:
    await stock.return_stock(tx, command=command, now=system_clock())
