import itertools
from collections.abc import Callable

from payment_mock.domain import answer_delay, draw, status_after_cancel


def sequence(*values: float) -> Callable[[], float]:
    it = itertools.cycle(values)
    return lambda: next(it)


def test_a_rate_of_one_always_hits_and_zero_never() -> None:
    for value in (0.0, 0.5, 0.999999):
        assert draw(decline_rate=1, timeout_rate=1, random=sequence(value)).declined
        assert draw(decline_rate=1, timeout_rate=1, random=sequence(value)).times_out
        assert not draw(decline_rate=0, timeout_rate=0, random=sequence(value)).declined
        assert not draw(decline_rate=0, timeout_rate=0, random=sequence(value)).times_out


def test_decline_and_timeout_are_drawn_independently() -> None:
    outcome = draw(decline_rate=0.5, timeout_rate=0.5, random=sequence(0.1, 0.9))
    assert (outcome.declined, outcome.times_out) == (True, False)
    outcome = draw(decline_rate=0.5, timeout_rate=0.5, random=sequence(0.9, 0.1))
    assert (outcome.declined, outcome.times_out) == (False, True)


def test_a_timeout_hangs_on_top_of_the_latency() -> None:
    assert answer_delay(latency_ms=0, times_out=False, hang_seconds=30) == 0
    assert answer_delay(latency_ms=250, times_out=False, hang_seconds=30) == 0.25
    assert answer_delay(latency_ms=250, times_out=True, hang_seconds=30) == 30.25


def test_only_approved_or_already_cancelled_payments_cancel() -> None:
    assert status_after_cancel("APPROVED") == "CANCELLED"
    assert status_after_cancel("CANCELLED") == "CANCELLED"
    assert status_after_cancel("DECLINED") is None
