"""The in-process limiter: bursts, Retry-After, lockouts that double, bounded memory."""

from datetime import UTC, datetime

import pytest

from shopkit.clock import FrozenClock
from shopkit.errors import Problem
from shopkit.limits import Limiter, Rule, client_address


def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 1, 1, tzinfo=UTC))


def refused(call: object) -> int:
    """The Retry-After of a 429, in seconds."""
    with pytest.raises(Problem) as caught:
        call()  # type: ignore[operator]
    assert (caught.value.status, caught.value.code) == (429, "RATE_LIMITED")
    return int(caught.value.headers["Retry-After"])


def test_a_burst_of_count_then_one_per_interval() -> None:
    now = clock()
    limits = Limiter({"order": Rule(3, 30)}, clock=now)
    for _ in range(3):
        limits.take("order", "u1")
    assert refused(lambda: limits.take("order", "u1")) == 10
    limits.take("order", "u2")  # another key has its own count
    now.advance(seconds=10)
    limits.take("order", "u1")
    assert refused(lambda: limits.take("order", "u1")) == 10


def test_a_refused_request_is_not_counted() -> None:
    now = clock()
    limits = Limiter({"order": Rule(1, 10)}, clock=now)
    limits.take("order", "u")
    for _ in range(50):
        refused(lambda: limits.take("order", "u"))
    now.advance(seconds=10)
    limits.take("order", "u")


def test_failures_lock_for_the_lockout_and_each_lockout_doubles_until_forgiven() -> None:
    now = clock()
    limits = Limiter({"login": Rule(3, 60, lockout=30)}, clock=now)
    for _ in range(3):
        limits.check("login", "a")
        limits.fail("login", "a")
    assert refused(lambda: limits.check("login", "a")) == 30
    now.advance(seconds=30)
    limits.check("login", "a")
    limits.fail("login", "a")
    assert refused(lambda: limits.check("login", "a")) == 60
    now.advance(seconds=60)
    limits.fail("login", "a")
    assert refused(lambda: limits.check("login", "a")) == 120

    limits.forgive("login", "a")
    limits.check("login", "a")


def test_the_longest_lockout_is_capped() -> None:
    now = clock()
    limits = Limiter({"login": Rule(1, 10, lockout=100, max_lockout=300)}, clock=now)
    waits = []
    for _ in range(5):
        limits.fail("login", "a")
        waits.append(refused(lambda: limits.check("login", "a")))
        now.advance(seconds=waits[-1])
    assert waits == [100, 200, 300, 300, 300]


def test_off_lets_everything_through() -> None:
    limits = Limiter({"order": Rule(1, 60, lockout=60)}, enabled=False, clock=clock())
    for _ in range(100):
        limits.take("order", "u")
        limits.fail("order", "u")
        limits.check("order", "u")


def test_memory_is_bounded_and_idle_keys_are_forgotten() -> None:
    now = clock()
    limits = Limiter({"order": Rule(2, 10)}, clock=now, max_keys=100)
    for i in range(1_000):
        limits.take("order", f"u{i}")
    assert len(limits._keys) <= 100
    now.advance(seconds=11)
    limits.take("order", "fresh")
    assert len(limits._keys) == 1


def test_rules_parse_from_settings_text() -> None:
    assert Rule.parse("5/60") == Rule(5, 60)
    assert Rule.parse("5/60/30") == Rule(5, 60, lockout=30)
    for bad in ("5", "0/60", "5/0", "a/b", "5/60/0"):
        with pytest.raises(ValueError):
            Rule.parse(bad)


def test_the_client_address_is_the_gateways_x_real_ip_else_the_peer() -> None:
    assert client_address({"x-real-ip": "10.0.0.9"}, "127.0.0.1") == "10.0.0.9"
    assert client_address({}, "127.0.0.1") == "127.0.0.1"
