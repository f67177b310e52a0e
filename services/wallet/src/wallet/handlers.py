"""Saga commands the wallet consumes: debit and refund, each answered on wallet.replies."""

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

from contracts import Envelope
from contracts.wallet import DebitWallet, RefundWallet
from shopkit.clock import system_clock
from shopkit.messaging import Consumer
from wallet import service

consumer = Consumer("wallet")


@consumer.handles_batch(DebitWallet)
async def on_debits(conn: asyncpg.Connection, commands: list[tuple[DebitWallet, Envelope]]) -> None:
    await service.debit(
        conn,
        commands=[(c, envelope.correlation_id) for c, envelope in commands],
        now=system_clock(),
    )


@consumer.handles(RefundWallet)
async def on_refund(session: AsyncSession, command: RefundWallet, _: Envelope) -> None:
    await service.refund(session, command=command, now=system_clock())
