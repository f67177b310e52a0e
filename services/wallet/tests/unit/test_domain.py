"""The wallet's rules, pure: what a debit takes and what a refund gives back."""

from wallet.domain import (
    DEBITED,
    INSUFFICIENT_BALANCE,
    USER_NOT_FOUND,
    VOIDED,
    Operation,
    debit,
    refund,
    refusal,
)


def test_a_debit_takes_the_whole_amount_when_the_balance_covers_it() -> None:
    assert debit(balance=10_000, amount=4_000) == Operation(DEBITED, amount=4_000, balance=6_000)
    assert debit(balance=4_000, amount=4_000) == Operation(DEBITED, amount=4_000, balance=0)


def test_a_debit_the_balance_does_not_cover_takes_nothing() -> None:
    assert debit(balance=3_999, amount=4_000) == Operation(INSUFFICIENT_BALANCE, 0, 0)
    assert debit(balance=0, amount=1) == Operation(INSUFFICIENT_BALANCE, 0, 0)


def test_a_debit_of_a_user_without_a_wallet_takes_nothing() -> None:
    assert debit(balance=None, amount=4_000) == Operation(USER_NOT_FOUND, 0, 0)


def test_a_refused_debit_says_why_and_a_voided_one_reads_as_not_covered() -> None:
    assert refusal(USER_NOT_FOUND) == "USER_NOT_FOUND"
    assert refusal(INSUFFICIENT_BALANCE) == "INSUFFICIENT_BALANCE"
    assert refusal(VOIDED) == "INSUFFICIENT_BALANCE"


def test_a_refund_gives_back_what_was_asked_up_to_what_the_debit_took() -> None:
    taken = Operation(DEBITED, amount=10_000, balance=0)
    assert refund(debit=taken, asked=4_000).amount == 4_000
    assert refund(debit=taken, asked=10_000).amount == 10_000
    assert refund(debit=taken, asked=15_000).amount == 10_000


def test_refunds_together_never_give_back_more_than_the_debit_took() -> None:
    partly_refunded = Operation(DEBITED, amount=10_000, balance=0, refunded=7_000)
    assert refund(debit=partly_refunded, asked=5_000).amount == 3_000
    fully_refunded = Operation(DEBITED, amount=10_000, balance=0, refunded=10_000)
    assert refund(debit=fully_refunded, asked=5_000).amount == 0
    assert refund(debit=Operation(DEBITED, amount=10_000, balance=0), asked=0).amount == 0


def test_a_refund_of_a_debit_that_took_nothing_gives_nothing_back() -> None:
    for outcome in (INSUFFICIENT_BALANCE, USER_NOT_FOUND, VOIDED):
        decided = refund(debit=Operation(outcome, 0, 0), asked=5_000)
        assert (decided.amount, decided.voids_debit) == (0, False)


def test_a_refund_that_overtakes_its_debit_voids_it() -> None:
    decided = refund(debit=None, asked=5_000)
    assert (decided.amount, decided.voids_debit) == (0, True)
