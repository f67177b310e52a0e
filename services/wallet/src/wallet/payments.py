"""Orders paying from the wallet: the saga's debits and refunds, each answered on wallet.replies.

Every command's outcome is recorded in `wallet_operations` under its operation id, so a command
sent again gets the first answer instead of a second debit or refund.
"""

import uuid
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from contracts.wallet import (
    DebitWallet,
    RefundWallet,
    WalletDebited,
    WalletDebitFailed,
    WalletRefunded,
)
from shopkit.db import Transaction
from shopkit.outbox import envelope, publish
from wallet import domain
from wallet.balances import credit
from wallet.domain import Operation


async def debit(
    tx: Transaction,
    *,
    commands: Sequence[tuple[DebitWallet, str | None]],
    now: datetime,
) -> None:
    """Take each order's amount if the balance covers it (`domain.debit`); answer once per
    operation. Each command comes with the correlation id its answer carries.

    Set-based, for a poll of commands: the operations already answered are read (and locked)
    in one statement, the new ones debited in one statement per round, and every answer
    queued in one. A round takes one command per user, as several orders of one user must see
    each other's debits: nearly always, a poll is one round."""
    answered = await _recorded(tx, {command.operation_id for command, _ in commands})
    # A command re-sent while the first is still in this batch gets the first one's answer.
    pending = list(
        {c.operation_id: c for c, _ in commands if c.operation_id not in answered}.values()
    )
    while pending:
        this_round: dict[str, DebitWallet] = {}
        later: list[DebitWallet] = []
        for command in pending:
            if command.user_id in this_round:
                later.append(command)
            else:
                this_round[command.user_id] = command
        answered.update(await _debit_round(tx, list(this_round.values()), now))
        pending = later
    await publish(
        tx,
        *(
            envelope(_debit_reply(answered[c.operation_id], c), correlation_id=correlation)
            for c, correlation in commands
        ),
    )


async def _recorded(tx: Transaction, operation_ids: set[str]) -> dict[str, Operation]:
    """The operations already answered among these, locked (in one order, against deadlocks)."""
    rows = await tx.fetch(
        "SELECT operation_id, outcome, amount, balance, transaction_id, refunded"
        " FROM wallet_operations WHERE operation_id = ANY($1::text[])"
        " ORDER BY operation_id FOR UPDATE",
        sorted(operation_ids),
    )
    return {row["operation_id"]: _operation(row) for row in rows}


async def _debit_round(
    tx: Transaction, commands: list[DebitWallet], now: datetime
) -> dict[str, Operation]:
    rows = await tx.fetch(
        _DEBIT,
        [c.user_id for c in commands],
        [c.amount for c in commands],
        [str(uuid.uuid4()) for _ in commands],
        [c.order_id for c in commands],
        [c.operation_id for c in commands],
        now,
    )
    return {row["operation_id"]: _operation(row) for row in rows}


# `domain.debit` for one round of debits, at most one per user, from parallel arrays ($1 user,
# $2 amount, $3 ledger transaction id, $4 order, $5 operation; $6 now): the balances that cover
# their amount are taken, with their ledger lines, and every operation's outcome is recorded
# and returned. tests/test_debit_rule.py holds it to the domain's rule.
_DEBIT = (
    "WITH c AS (SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[],"
    "  $5::text[]) AS c(user_id, amount, tx, order_id, op)),"
    " taken AS (UPDATE wallets w SET balance = w.balance - c.amount, updated_at = $6 FROM c"
    "  WHERE w.user_id = c.user_id AND w.balance >= c.amount RETURNING w.user_id, w.balance),"
    " ledger AS (INSERT INTO wallet_transactions"
    "  (id, user_id, type, amount, balance_after, order_id, created_at)"
    "  SELECT c.tx, c.user_id, 'PAYMENT', -c.amount, t.balance, c.order_id, $6"
    "  FROM c JOIN taken t USING (user_id))"
    " INSERT INTO wallet_operations (operation_id, order_id, user_id, kind, outcome, amount,"
    "  refunded, balance, transaction_id)"
    " SELECT c.op, c.order_id, c.user_id, 'DEBIT',"
    "  CASE WHEN t.user_id IS NOT NULL THEN 'DEBITED'"
    "   WHEN EXISTS (SELECT 1 FROM wallets w WHERE w.user_id = c.user_id)"
    "   THEN 'INSUFFICIENT_BALANCE' ELSE 'USER_NOT_FOUND' END,"
    "  CASE WHEN t.user_id IS NOT NULL THEN c.amount ELSE 0 END, 0, coalesce(t.balance, 0),"
    "  CASE WHEN t.user_id IS NOT NULL THEN c.tx END"
    " FROM c LEFT JOIN taken t USING (user_id)"
    " RETURNING operation_id, outcome, amount, balance, transaction_id, refunded"
)


def _operation(row: asyncpg.Record) -> Operation:
    return Operation(
        outcome=row["outcome"],
        amount=row["amount"],
        balance=row["balance"],
        transaction_id=row["transaction_id"],
        refunded=row["refunded"],
    )


def _debit_reply(op: Operation, command: DebitWallet) -> WalletDebited | WalletDebitFailed:
    if op.outcome == domain.DEBITED:
        return WalletDebited(
            order_id=command.order_id,
            operation_id=command.operation_id,
            user_id=command.user_id,
            amount=op.amount,
            balance=op.balance,
            transaction_id=op.transaction_id or "",
        )
    return WalletDebitFailed(
        order_id=command.order_id,
        operation_id=command.operation_id,
        user_id=command.user_id,
        reason=domain.refusal(op.outcome),
    )


async def refund(tx: Transaction, *, command: RefundWallet, now: datetime) -> None:
    """Give back what a debit took (at most that, `domain.refund`), or void a debit that never
    happened; answer once per operation."""
    recorded = await _recorded(tx, {command.operation_id, command.debit_operation_id})
    done = recorded.get(command.operation_id)
    if done is None:
        done = await _refund_once(
            tx, command=command, debit=recorded.get(command.debit_operation_id), now=now
        )
    await publish(
        tx,
        WalletRefunded(
            order_id=command.order_id,
            operation_id=command.operation_id,
            user_id=command.user_id,
            amount=done.amount,
            balance=done.balance,
            transaction_id=done.transaction_id or "",
        ),
    )


async def _refund_once(
    tx: Transaction, *, command: RefundWallet, debit: Operation | None, now: datetime
) -> Operation:
    decided = domain.refund(debit=debit, asked=command.amount)
    if decided.voids_debit:
        await _record_operation(
            tx, command, command.debit_operation_id, "DEBIT", Operation(domain.VOIDED, 0, 0)
        )
    elif decided.amount > 0:
        await tx.execute(
            "UPDATE wallet_operations SET refunded = refunded + $2 WHERE operation_id = $1",
            command.debit_operation_id,
            decided.amount,
        )
    credited = await credit(
        tx,
        user_id=command.user_id,
        amount=decided.amount,
        kind="REFUND",
        now=now,
        order_id=command.order_id,
    )
    done = Operation(
        domain.REFUNDED,
        amount=decided.amount,
        balance=credited.balance if credited else 0,
        transaction_id=credited.transaction_id if credited else None,
    )
    await _record_operation(tx, command, command.operation_id, "REFUND", done)
    return done


async def _record_operation(
    tx: Transaction, command: RefundWallet, operation_id: str, kind: str, op: Operation
) -> None:
    await tx.execute(
        "INSERT INTO wallet_operations (operation_id, order_id, user_id, kind, outcome, amount,"
        " refunded, balance, transaction_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        operation_id,
        command.order_id,
        command.user_id,
        kind,
        op.outcome,
        op.amount,
        op.refunded,
        op.balance,
        op.transaction_id,
    )
