"""Wallet use cases. Balances change only by conditional UPDATEs inside one short transaction."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.wallet import (
    BalanceCharged,
    DebitWallet,
    RefundWallet,
    UserRegistered,
    WalletDebited,
    WalletDebitFailed,
    WalletRefunded,
)
from shopkit.db import Database
from shopkit.errors import Problem
from shopkit.outbox import add_message, envelope_for, queue_envelopes
from shopkit.pagination import decode_cursor, encode_cursor
from wallet.models import User, Wallet, WalletOperation, WalletTransaction
from wallet.passwords import Passwords


@dataclass(frozen=True)
class Balance:
    user_id: str
    balance: int
    transaction_id: str | None = None


async def register_user(
    db: Database,
    *,
    passwords: Passwords,
    name: str,
    email: str,
    password: str,
    now: datetime,
    role: str = "user",
) -> User:
    """Create a user with an empty wallet; 409 EMAIL_TAKEN when the email is in use."""
    password_hash = await passwords.hash(password)
    user_id = str(uuid.uuid4())
    async with db.transaction() as session:
        created = await session.execute(
            insert(User)
            .values(
                id=user_id,
                name=name,
                email=email,
                password_hash=password_hash,
                role=role,
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=[User.email])
            .returning(User.id)
        )
        if created.scalar_one_or_none() is None:
            raise Problem(409, "EMAIL_TAKEN", "a user with this email already exists")
        session.add(Wallet(user_id=user_id, balance=0))
        await add_message(
            session,
            UserRegistered(
                user_id=user_id,
                name=name,
                email=email,
                role=role,
                registered_at=now,
            ),
        )
    return User(id=user_id, name=name, email=email, role=role)


async def authenticate(db: Database, *, passwords: Passwords, email: str, password: str) -> User:
    """The user with these credentials; 401 INVALID_CREDENTIALS otherwise."""
    async with db.sessions() as session:
        user = (await session.execute(select(User).where(User.email == email))).scalar_one_or_none()
    if not await passwords.verify(user.password_hash if user else None, password) or user is None:
        raise Problem(401, "INVALID_CREDENTIALS", "email or password is wrong")
    return user


async def ensure_admin(
    db: Database, *, passwords: Passwords, email: str, password: str, now: datetime
) -> None:
    """Create the admin account, or give it this password: the configured one always wins."""
    async with db.sessions() as session:
        found = (
            await session.execute(select(User.id, User.password_hash).where(User.email == email))
        ).first()
    if found is None:
        try:
            await register_user(
                db,
                passwords=passwords,
                name="Admin",
                email=email,
                password=password,
                now=now,
                role="admin",
            )
        except Problem:
            pass  # another replica created it first
        return
    if await passwords.verify(found.password_hash, password):
        return
    password_hash = await passwords.hash(password)
    async with db.transaction() as session:
        await session.execute(
            update(User)
            .where(User.id == found.id)
            .values(password_hash=password_hash, role="admin")
        )


async def get_balance(db: Database, *, user_id: str) -> Balance:
    """The user's balance; 404 USER_NOT_FOUND for an unknown user."""
    async with db.sessions() as session:
        balance = (
            await session.execute(select(Wallet.balance).where(Wallet.user_id == user_id))
        ).scalar_one_or_none()
    if balance is None:
        raise Problem(404, "USER_NOT_FOUND", f"no user {user_id}")
    return Balance(user_id=user_id, balance=balance)


async def charge(session: AsyncSession, *, user_id: str, amount: int, now: datetime) -> Balance:
    """Add `amount` to the balance and the ledger; 404 USER_NOT_FOUND writes nothing."""
    balance = (
        await session.execute(
            update(Wallet)
            .where(Wallet.user_id == user_id)
            .values(balance=Wallet.balance + amount, updated_at=now)
            .returning(Wallet.balance)
        )
    ).scalar_one_or_none()
    if balance is None:
        raise Problem(404, "USER_NOT_FOUND", f"no user {user_id}")
    tx_id = _record(
        session,
        user_id=user_id,
        type_="CHARGE",
        amount=amount,
        balance_after=balance,
        order_id=None,
        now=now,
    )
    await add_message(
        session,
        BalanceCharged(user_id=user_id, amount=amount, balance=balance, transaction_id=tx_id),
    )
    return Balance(user_id=user_id, balance=balance, transaction_id=tx_id)


async def list_transactions(
    db: Database, *, user_id: str, limit: int, cursor: str | None
) -> tuple[list[WalletTransaction], str | None]:
    """A page of the user's ledger, newest first."""
    after = decode_cursor(cursor, size=1)
    async with db.sessions() as session:
        if (await session.get(Wallet, user_id)) is None:
            raise Problem(404, "USER_NOT_FOUND", f"no user {user_id}")
        query = select(WalletTransaction).where(WalletTransaction.user_id == user_id)
        if after is not None:
            query = query.where(WalletTransaction.seq < int(after[0]))
        rows = list(
            (
                await session.execute(query.order_by(WalletTransaction.seq.desc()).limit(limit + 1))
            ).scalars()
        )
    next_cursor = encode_cursor([rows[limit - 1].seq]) if len(rows) > limit else None
    return rows[:limit], next_cursor


async def debit(
    conn: asyncpg.Connection,
    *,
    commands: Sequence[tuple[DebitWallet, str | None]],
    now: datetime,
) -> None:
    """Take each order's amount if the balance covers it; answer once per operation. Each
    command comes with the correlation id its answer carries.

    Set-based, for a poll of commands: the operations already answered are read (and locked)
    in one statement, the new ones debited in one statement per round (one command per user a
    round, as several orders of one user must see each other's debits: nearly always one
    round), and every answer queued in one. Three statements per command before."""
    op_ids = sorted({command.operation_id for command, _ in commands})
    answered = {
        row["operation_id"]: _Outcome(*row[1:])
        for row in await conn.fetch(
            "SELECT operation_id, outcome, amount, balance, transaction_id FROM wallet_operations"
            " WHERE operation_id = ANY($1::text[]) ORDER BY operation_id FOR UPDATE",
            op_ids,
        )
    }
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
        batch = list(this_round.values())
        for row in await conn.fetch(
            _DEBIT,
            [c.user_id for c in batch],
            [c.amount for c in batch],
            [str(uuid.uuid4()) for _ in batch],
            [c.order_id for c in batch],
            [c.operation_id for c in batch],
            now,
        ):
            answered[row["operation_id"]] = _Outcome(*row[1:])
        pending = later
    await queue_envelopes(
        conn,
        [
            (
                WalletDebited.TOPIC.name,
                envelope_for(_debit_reply(answered[c.operation_id], c), correlation_id=correlation),
            )
            for c, correlation in commands
        ],
    )


@dataclass(frozen=True)
class _Outcome:
    """What a debit operation answered (as recorded in `wallet_operations`)."""

    outcome: str
    amount: int
    balance: int
    transaction_id: str | None


# One round of debits, at most one per user, from parallel arrays ($1 user, $2 amount, $3 ledger
# transaction id, $4 order, $5 operation; $6 now): the balances that cover their amount are
# taken, with their ledger lines, and every operation's outcome is recorded and returned.
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
    " RETURNING operation_id, outcome, amount, balance, transaction_id"
)


def _debit_reply(op: "_Outcome", command: DebitWallet) -> WalletDebited | WalletDebitFailed:
    if op.outcome == "DEBITED":
        return WalletDebited(
            order_id=command.order_id,
            operation_id=command.operation_id,
            user_id=command.user_id,
            amount=op.amount,
            balance=op.balance,
            transaction_id=op.transaction_id or "",
        )
    reason = "USER_NOT_FOUND" if op.outcome == "USER_NOT_FOUND" else "INSUFFICIENT_BALANCE"
    return WalletDebitFailed(
        order_id=command.order_id,
        operation_id=command.operation_id,
        user_id=command.user_id,
        reason=reason,
    )


async def refund(session: AsyncSession, *, command: RefundWallet, now: datetime) -> None:
    """Give back what a debit took (at most that), or void a debit that never happened."""
    previous = await session.get(WalletOperation, command.operation_id, populate_existing=True)
    if previous is None:
        previous = await _refund_once(session, command=command, now=now)
        session.add(previous)
    await add_message(
        session,
        WalletRefunded(
            order_id=command.order_id,
            operation_id=command.operation_id,
            user_id=command.user_id,
            amount=previous.amount,
            balance=previous.balance,
            transaction_id=previous.transaction_id or "",
        ),
    )


async def _refund_once(
    session: AsyncSession, *, command: RefundWallet, now: datetime
) -> WalletOperation:
    debit_op = await session.get(
        WalletOperation, command.debit_operation_id, with_for_update=True, populate_existing=True
    )
    amount = 0
    if debit_op is None:
        # The debit has not arrived: void it so that a late debit is refused, not taken.
        session.add(
            WalletOperation(
                operation_id=command.debit_operation_id,
                order_id=command.order_id,
                user_id=command.user_id,
                kind="DEBIT",
                outcome="VOIDED",
                amount=0,
                refunded=0,
                balance=0,
            )
        )
    elif debit_op.outcome == "DEBITED":
        amount = max(0, min(command.amount, debit_op.amount - debit_op.refunded))
        debit_op.refunded += amount
    op = WalletOperation(
        operation_id=command.operation_id,
        order_id=command.order_id,
        user_id=command.user_id,
        kind="REFUND",
        outcome="REFUNDED",
        amount=amount,
        refunded=0,
        balance=0,
    )
    balance = (
        await session.execute(
            update(Wallet)
            .where(Wallet.user_id == command.user_id)
            .values(balance=Wallet.balance + amount, updated_at=now)
            .returning(Wallet.balance)
        )
    ).scalar_one_or_none()
    op.balance = balance or 0
    if amount > 0 and balance is not None:
        op.transaction_id = _record(
            session,
            user_id=command.user_id,
            type_="REFUND",
            amount=amount,
            balance_after=balance,
            order_id=command.order_id,
            now=now,
        )
    return op


def _record(
    session: AsyncSession,
    *,
    user_id: str,
    type_: str,
    amount: int,
    balance_after: int,
    order_id: str | None,
    now: datetime,
) -> str:
    tx_id = str(uuid.uuid4())
    session.add(
        WalletTransaction(
            id=tx_id,
            user_id=user_id,
            type=type_,
            amount=amount,
            balance_after=balance_after,
            order_id=order_id,
            created_at=now,
        )
    )
    return tx_id
