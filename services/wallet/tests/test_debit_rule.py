"""The batched debit statement applies `domain.debit` exactly: both run on the same cases, the
statement against real PostgreSQL, and must agree on every outcome, amount and balance."""

import uuid
from itertools import product

from contracts.wallet import DebitWallet
from shopkit.clock import system_clock
from shopkit.db import Database
from wallet import domain, payments

from .conftest import OpenWallets

BALANCES = (None, 0, 1, 99, 100, 101, 10_000_000)  # None: the user has no wallet
AMOUNTS = (0, 1, 100, 101, 10_000_000)
# Several debits of one user in one poll: each must see the ones before it (rounds).
SEQUENCES = ((150, (100, 100, 50)), (100, (100, 1)), (0, (0, 1)), (300, (101, 99, 100)))


async def test_the_debit_statement_decides_as_the_domain_rule(
    db: Database, open_wallets: OpenWallets
) -> None:
    cases = [(b, (a,)) for b, a in product(BALANCES, AMOUNTS)] + list(SEQUENCES)
    users = [str(uuid.uuid4()) for _ in cases]
    async with db.transaction() as tx:
        await open_wallets(tx, {u: b for u, (b, _) in zip(users, cases, strict=True)})
    commands = [
        (
            user,
            DebitWallet(
                order_id=str(uuid.uuid4()),
                operation_id=str(uuid.uuid4()),
                user_id=user,
                amount=amount,
            ),
        )
        for user, (_, amounts) in zip(users, cases, strict=True)
        for amount in amounts
    ]
    async with db.transaction() as tx:
        await payments.debit(tx, commands=[(c, None) for _, c in commands], now=system_clock())

    async with db.autocommit() as conn:
        recorded = {
            r["operation_id"]: (r["outcome"], r["amount"], r["balance"])
            for r in await conn.fetch(
                "SELECT operation_id, outcome, amount, balance FROM wallet_operations"
                " WHERE operation_id = ANY($1)",
                [c.operation_id for _, c in commands],
            )
        }
        balances = dict(
            await conn.fetch("SELECT user_id, balance FROM wallets WHERE user_id = ANY($1)", users)
        )
        paid = {
            r["order_id"]: (r["amount"], r["balance_after"])
            for r in await conn.fetch(
                "SELECT order_id, amount, balance_after FROM wallet_transactions"
                " WHERE user_id = ANY($1) AND type = 'PAYMENT'",
                users,
            )
        }
    expected_balances = {u: b for u, (b, _) in zip(users, cases, strict=True)}
    for user, command in commands:
        rule = domain.debit(balance=expected_balances[user], amount=command.amount)
        case = (expected_balances[user], command.amount)
        assert recorded[command.operation_id] == (rule.outcome, rule.amount, rule.balance), case
        if rule.outcome == domain.DEBITED:
            assert paid.pop(command.order_id) == (-rule.amount, rule.balance), case
            expected_balances[user] = rule.balance
    assert paid == {}  # a ledger line for each debit taken, and no other
    assert balances == {u: b for u, b in expected_balances.items() if b is not None}
