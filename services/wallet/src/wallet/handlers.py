"""Saga commands the wallet consumes: debit and refund, each answered on wallet.replies."""

import asyncpg

from contracts import Envelope
from contracts.wallet import DebitWallet, RefundWallet
from shopkit.clock import system_clock
from shopkit.messaging import Consumer
from wallet import payments

consumer = Consumer("wallet")


@consumer.handles_batch(DebitWallet)
async def on_debits(tx: asyncpg.Connection, commands: list[tuple[DebitWallet, Envelope]]) -> None:
    await payments.debit(
        tx,
        commands=[(c, envelope.correlation_id) for c, envelope in commands],
        now=system_clock(),
    )


@consumer.handles_raw(RefundWallet)
async def on_refund(tx: asyncpg.Connection, command: RefundWallet, _: Envelope) -> None:
    await payments.refund(tx, command=command, now=system_clock())
