"""Saga commands the wallet consumes: debit and refund, each answered on wallet.replies."""

from contracts import Envelope
from contracts.wallet import DebitWallet, RefundWallet
from shopkit.clock import system_clock
from shopkit.db import Transaction
from shopkit.messaging import Consumer, each
from wallet import payments

consumer = Consumer("wallet")


@consumer.handles(DebitWallet)
async def on_debits(tx: Transaction, commands: list[tuple[DebitWallet, Envelope]]) -> None:
    await payments.debit(
        tx,
        commands=[(c, envelope.correlation_id) for c, envelope in commands],
        now=system_clock(),
    )


@consumer.handles(RefundWallet)
@each
async def on_refund(tx: Transaction, command: RefundWallet, _: Envelope) -> None:
    await payments.refund(tx, command=command, now=system_clock())
