"""The wallet's rules for the order saga: what a debit takes and what a refund gives back.

These functions are the rules' one owner. The batched debit applies `debit` in SQL, so that a
poll of debits is a few statements (payments.py); tests/test_debit_rule.py runs both on the
same cases against PostgreSQL, so the statement cannot drift from the rule.
"""

from dataclasses import dataclass
from typing import Final, Literal

DEBITED: Final = "DEBITED"
INSUFFICIENT_BALANCE: Final = "INSUFFICIENT_BALANCE"
USER_NOT_FOUND: Final = "USER_NOT_FOUND"
# A debit a refund overtook: recorded so the debit, if it ever arrives, is refused.
VOIDED: Final = "VOIDED"
REFUNDED: Final = "REFUNDED"

Refusal = Literal["INSUFFICIENT_BALANCE", "USER_NOT_FOUND"]


@dataclass(frozen=True)
class Operation:
    """A debit or refund as `wallet_operations` records it: a re-sent command gets this answer."""

    outcome: str
    amount: int  # what it took or gave back
    balance: int  # the balance just after it; 0 when it changed nothing
    transaction_id: str | None = None  # its ledger line, if it wrote one
    refunded: int = 0  # of a debit: how much of `amount` refunds have given back


def debit(*, balance: int | None, amount: int) -> Operation:
    """Debit `amount` from a wallet holding `balance` (None: the user has no wallet): all of
    it when the balance covers it, else nothing."""
    if balance is None:
        return Operation(USER_NOT_FOUND, amount=0, balance=0)
    if balance < amount:
        return Operation(INSUFFICIENT_BALANCE, amount=0, balance=0)
    return Operation(DEBITED, amount=amount, balance=balance - amount)


def refusal(outcome: str) -> Refusal:
    """Why a debit that took nothing was refused; a voided debit reads as not covered."""
    return USER_NOT_FOUND if outcome == USER_NOT_FOUND else INSUFFICIENT_BALANCE


@dataclass(frozen=True)
class Refund:
    amount: int  # given back to the wallet
    voids_debit: bool  # the debit has not arrived: record it VOIDED instead


def refund(*, debit: Operation | None, asked: int) -> Refund:
    """Give back `asked`, but never more than the debit took minus what refunds already gave
    back; nothing for a refused or voided debit; a debit not seen yet is voided."""
    if debit is None:
        return Refund(amount=0, voids_debit=True)
    if debit.outcome != DEBITED:
        return Refund(amount=0, voids_debit=False)
    return Refund(amount=max(0, min(asked, debit.amount - debit.refunded)), voids_debit=False)
