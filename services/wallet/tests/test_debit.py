"""The saga's debits, set-based, against real PostgreSQL: a poll of commands at once."""

import uuid

import httpx

from contracts.wallet import DebitWallet
from shopdev.testing import KafkaProbe
from shopkit.clock import system_clock
from shopkit.db import Database
from wallet import payments


async def funded(register, wallet: httpx.AsyncClient, amount: int) -> str:
    user_id, headers = await register(wallet)
    charged = await wallet.post(
        f"/api/users/{user_id}/balance/charge", json={"amount": amount}, headers=headers
    )
    assert charged.status_code == 200, charged.text
    return user_id


CORRELATIONS = {"c1", "c2", "c3", "c3-again", "c4", "c5"}


def debit(user_id: str, amount: int, order_id: str | None = None) -> DebitWallet:
    order_id = order_id or str(uuid.uuid4())
    return DebitWallet(
        order_id=order_id, operation_id=f"{order_id}:place:debit", user_id=user_id, amount=amount
    )


async def test_a_batch_of_debits_takes_each_balance_once_and_answers_every_command(
    register, wallet: httpx.AsyncClient, db: Database, kafka: KafkaProbe
) -> None:
    rich = await funded(register, wallet, 50_000)
    poor = await funded(register, wallet, 15_000)
    answered_before = debit(rich, 1_000)
    async with db.transaction() as conn:
        await payments.debit(conn, commands=[(answered_before, None)], now=system_clock())

    first, second = debit(poor, 10_000), debit(poor, 10_000)  # only one fits
    third = debit(rich, 20_000)
    commands = [
        (first, "c1"),
        (second, "c2"),
        (third, "c3"),
        (third, "c3-again"),  # re-sent while the first copy is in the same batch
        (answered_before, "c4"),  # re-sent after it was answered
        (debit(str(uuid.uuid4()), 5_000), "c5"),  # nobody's wallet
    ]
    async with db.transaction() as conn:
        await payments.debit(conn, commands=commands, now=system_clock())

    async with db.autocommit() as conn:
        balances = dict(
            await conn.fetch(
                "SELECT user_id, balance FROM wallets WHERE user_id = ANY($1)", [rich, poor]
            )
        )
        ledger = await conn.fetch(
            "SELECT user_id, amount, balance_after FROM wallet_transactions"
            " WHERE user_id = ANY($1) AND type = 'PAYMENT'",
            [rich, poor],
        )
    assert balances == {rich: 50_000 - 1_000 - 20_000, poor: 15_000 - 10_000}
    assert sorted((p["user_id"], p["amount"], p["balance_after"]) for p in ledger) == sorted(
        [(rich, -1_000, 49_000), (rich, -20_000, 29_000), (poor, -10_000, 5_000)]
    )
    # One answer per command, each with its command's correlation id (the relay deletes what it
    # sent: the answers are read where they went, on Kafka).
    keys = {command.order_id for command, _ in commands}
    replies = await kafka.wait_for(
        "wallet.replies",
        lambda e: e["key"] in keys and e["correlation_id"] in CORRELATIONS,
        count=6,
    )
    by_correlation = {r["correlation_id"]: r for r in replies}
    assert len(replies) == len(by_correlation) == 6
    assert [(c, by_correlation[c]["type"]) for c in sorted(by_correlation)] == [
        ("c1", "WalletDebited"),
        ("c2", "WalletDebitFailed"),
        ("c3", "WalletDebited"),
        ("c3-again", "WalletDebited"),
        ("c4", "WalletDebited"),
        ("c5", "WalletDebitFailed"),
    ]
    payloads = [by_correlation[c]["payload"] for c in sorted(by_correlation)]
    assert payloads[0]["balance"] == 5_000 and payloads[1]["reason"] == "INSUFFICIENT_BALANCE"
    assert payloads[2] == payloads[3] and payloads[2]["balance"] == 29_000
    assert payloads[4]["balance"] == 49_000  # the first answer again, not a second debit
    assert payloads[5]["reason"] == "USER_NOT_FOUND"
