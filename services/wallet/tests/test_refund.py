"""The saga's refunds against real PostgreSQL: capped by what the debit took, answered once per
operation, and a refund that overtakes its debit voids it."""

import uuid

import httpx

from contracts.wallet import DebitWallet, RefundWallet
from shopdev.testing import KafkaProbe
from shopkit.clock import system_clock
from shopkit.db import Database
from wallet import payments

from .conftest import OpenWallets


def debit(user_id: str, order_id: str, amount: int) -> DebitWallet:
    return DebitWallet(
        order_id=order_id, operation_id=f"{order_id}:debit", user_id=user_id, amount=amount
    )


def refund(command: DebitWallet, name: str, amount: int) -> RefundWallet:
    return RefundWallet(
        order_id=command.order_id,
        operation_id=f"{command.order_id}:{name}",
        debit_operation_id=command.operation_id,
        user_id=command.user_id,
        amount=amount,
    )


async def handle(db: Database, *commands: DebitWallet | RefundWallet) -> None:
    for command in commands:
        async with db.transaction() as tx:
            if isinstance(command, DebitWallet):
                await payments.debit(tx, commands=[(command, None)], now=system_clock())
            else:
                await payments.refund(tx, command=command, now=system_clock())


async def test_refunds_give_back_at_most_what_the_debit_took_once_each(
    db: Database, open_wallets: OpenWallets, wallet: httpx.AsyncClient, kafka: KafkaProbe
) -> None:
    user, order = str(uuid.uuid4()), str(uuid.uuid4())
    async with db.transaction() as tx:
        await open_wallets(tx, {user: 10_000})
    taken = debit(user, order, 6_000)
    first, second = refund(taken, "first", 2_500), refund(taken, "second", 5_000)

    await handle(db, taken, first, second, first)  # the first refund re-sent last

    async with db.autocommit() as conn:
        balance = await conn.fetchval("SELECT balance FROM wallets WHERE user_id = $1", user)
        refunds = await conn.fetch(
            "SELECT amount, balance_after FROM wallet_transactions"
            " WHERE user_id = $1 AND type = 'REFUND' ORDER BY seq",
            user,
        )
    assert balance == 10_000
    assert [(r["amount"], r["balance_after"]) for r in refunds] == [(2_500, 6_500), (3_500, 10_000)]
    replies = await kafka.wait_for(
        "wallet.replies", lambda e: e["key"] == order and e["type"] == "WalletRefunded", count=3
    )
    assert [(r["payload"]["operation_id"], r["payload"]["amount"]) for r in replies] == [
        (first.operation_id, 2_500),
        (second.operation_id, 3_500),
        (first.operation_id, 2_500),  # the first answer again, not a second refund
    ]
    assert replies[0]["payload"] == replies[2]["payload"]


async def test_a_refund_that_overtakes_its_debit_voids_it_and_the_late_debit_is_refused(
    db: Database, open_wallets: OpenWallets, wallet: httpx.AsyncClient, kafka: KafkaProbe
) -> None:
    user, order = str(uuid.uuid4()), str(uuid.uuid4())
    async with db.transaction() as tx:
        await open_wallets(tx, {user: 10_000})
    late = debit(user, order, 6_000)

    await handle(db, refund(late, "refund", 6_000), late)

    async with db.autocommit() as conn:
        balance = await conn.fetchval("SELECT balance FROM wallets WHERE user_id = $1", user)
        lines = await conn.fetchval(
            "SELECT count(*) FROM wallet_transactions WHERE user_id = $1", user
        )
    assert (balance, lines) == (10_000, 0)
    replies = await kafka.wait_for("wallet.replies", lambda e: e["key"] == order, count=2)
    assert [
        (r["type"], r["payload"].get("amount"), r["payload"].get("reason")) for r in replies
    ] == [
        ("WalletRefunded", 0, None),
        ("WalletDebitFailed", None, "INSUFFICIENT_BALANCE"),
    ]


async def test_a_refund_of_a_refused_debit_gives_nothing_back(
    db: Database, open_wallets: OpenWallets
) -> None:
    user, order = str(uuid.uuid4()), str(uuid.uuid4())
    async with db.transaction() as tx:
        await open_wallets(tx, {user: 100})
    refused = debit(user, order, 6_000)

    await handle(db, refused, refund(refused, "refund", 6_000))

    async with db.autocommit() as conn:
        balance = await conn.fetchval("SELECT balance FROM wallets WHERE user_id = $1", user)
        recorded = await conn.fetchrow(
            "SELECT outcome, amount, transaction_id FROM wallet_operations WHERE operation_id = $1",
            f"{order}:refund",
        )
    assert balance == 100
    assert tuple(recorded) == ("REFUNDED", 0, None)
