"""Balances and the ledger: a user's balance, charging it, and the page of its ledger lines."""

import uuid
from dataclasses import dataclass
from datetime import datetime

from contracts.wallet import BalanceCharged
from shopkit.db import Database, Transaction
from shopkit.errors import Problem
from shopkit.outbox import publish
from shopkit.pagination import decode_cursor, encode_cursor
from wallet.models import WalletTransaction


@dataclass(frozen=True)
class Balance:
    user_id: str
    balance: int
    transaction_id: str | None = None


async def get_balance(db: Database, *, user_id: str) -> Balance:
    """The user's balance; 404 USER_NOT_FOUND for an unknown user."""
    async with db.autocommit() as conn:
        balance = await conn.fetchval("SELECT balance FROM wallets WHERE user_id = $1", user_id)
    if balance is None:
        raise _no_user(user_id)
    return Balance(user_id=user_id, balance=balance)


async def charge(tx: Transaction, *, user_id: str, amount: int, now: datetime) -> Balance:
    """Add `amount` to the balance and the ledger; 404 USER_NOT_FOUND writes nothing."""
    charged = await credit(tx, user_id=user_id, amount=amount, kind="CHARGE", now=now)
    if charged is None:
        raise _no_user(user_id)
    await publish(
        tx,
        BalanceCharged(
            user_id=user_id,
            amount=amount,
            balance=charged.balance,
            transaction_id=charged.transaction_id or "",
        ),
    )
    return charged


async def credit(
    tx: Transaction,
    *,
    user_id: str,
    amount: int,
    kind: str,
    now: datetime,
    order_id: str | None = None,
) -> Balance | None:
    """Add `amount` to the balance, with its ledger line of type `kind` when it is not zero;
    None when the user has no wallet."""
    transaction_id = str(uuid.uuid4())
    balance = await tx.fetchval(_CREDIT, user_id, amount, kind, order_id, now, transaction_id)
    if balance is None:
        return None
    return Balance(user_id, balance, transaction_id if amount > 0 else None)


# The balance and its ledger line in one statement ($1 user, $2 amount, $3 ledger type,
# $4 order, $5 now, $6 ledger transaction id): the new balance, or no row for no wallet.
_CREDIT = (
    "WITH credited AS (UPDATE wallets SET balance = balance + $2::bigint, updated_at = $5"
    "  WHERE user_id = $1::text RETURNING balance),"
    " ledger AS (INSERT INTO wallet_transactions"
    "  (id, user_id, type, amount, balance_after, order_id, created_at)"
    "  SELECT $6::text, $1::text, $3::text, $2::bigint, balance, $4::text, $5 FROM credited"
    "  WHERE $2::bigint > 0)"
    " SELECT balance FROM credited"
)


async def list_transactions(
    db: Database, *, user_id: str, limit: int, cursor: str | None
) -> tuple[list[WalletTransaction], str | None]:
    """A page of the user's ledger, newest first."""
    after = decode_cursor(cursor, size=1)
    async with db.autocommit() as conn:
        if await conn.fetchval("SELECT 1 FROM wallets WHERE user_id = $1", user_id) is None:
            raise _no_user(user_id)
        rows = await conn.fetch(
            "SELECT seq, id, user_id, type, amount, balance_after, order_id, created_at"
            " FROM wallet_transactions WHERE user_id = $1 AND seq < $2"
            " ORDER BY seq DESC LIMIT $3",
            user_id,
            int(after[0]) if after is not None else _AFTER_ALL,
            limit + 1,
        )
    lines = [WalletTransaction(**row) for row in rows]
    next_cursor = encode_cursor([lines[limit - 1].seq]) if len(lines) > limit else None
    return lines[:limit], next_cursor


_AFTER_ALL = 2**63 - 1  # above every ledger seq (a bigint)


def _no_user(user_id: str) -> Problem:
    return Problem(404, "USER_NOT_FOUND", f"no user {user_id}")
