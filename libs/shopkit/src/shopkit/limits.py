"""Abuse limits per account or client address, counted in this process.

Each (action, key) has a rule: `count` requests per `seconds`, taken as a burst of `count` and
then one every `seconds / count` (GCRA: one timestamp per key, the "theoretical arrival time").
A rule with a lockout is for failures (wrong passwords): once the key has failed `count` times,
it is locked for `lockout` seconds, and each lockout before the key is forgiven (a correct
login) doubles that, up to `max_lockout`.

Counts live in this process only: with several replicas each one counts for itself, so a client
gets up to replicas x count; the gateway's per-address limits (nginx) are the shared bound.
Memory is bounded: at most `max_keys` keys, the least recently used forgotten first.
"""

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BeforeValidator
from pydantic_settings import NoDecode

from shopkit.clock import Clock, system_clock
from shopkit.errors import Problem

RATE_LIMITED = "RATE_LIMITED"


@dataclass(frozen=True)
class Rule:
    """`count` requests per `seconds`; with `lockout`, a failure rule that backs off."""

    count: int
    seconds: float
    lockout: float | None = None
    max_lockout: float = 900.0

    @classmethod
    def parse(cls, value: Any) -> "Rule":
        """`"5/60"` (5 per 60 s) or `"5/60/30"` (then locked 30 s, doubling), from settings."""
        if isinstance(value, Rule):
            return value
        parts = str(value).split("/")
        if len(parts) not in (2, 3):
            raise ValueError(f"a limit is COUNT/SECONDS[/LOCKOUT], got {value!r}")
        count, seconds = int(parts[0]), float(parts[1])
        lockout = float(parts[2]) if len(parts) == 3 else None
        if count < 1 or seconds <= 0 or (lockout is not None and lockout <= 0):
            raise ValueError(f"a limit needs COUNT >= 1 and positive seconds, got {value!r}")
        return cls(count, seconds, lockout)

    @property
    def interval(self) -> float:
        return self.seconds / self.count


# A settings field type: SHOP_LIMIT_... = "5/60" or "5/300/30".
RuleSetting = Annotated[Rule, NoDecode, BeforeValidator(Rule.parse)]


@dataclass
class _Key:
    tat: float  # when this key's bucket is empty again (GCRA's theoretical arrival time)
    strikes: int = 0  # lockouts since the key was last forgiven


class Limiter:
    """Per-(action, key) limits of one process; `enabled=False` lets everything through."""

    def __init__(
        self,
        rules: dict[str, Rule],
        *,
        enabled: bool = True,
        clock: Clock = system_clock,
        max_keys: int = 100_000,
    ) -> None:
        self.rules = rules
        self.enabled = enabled
        self._clock = clock
        self._max_keys = max_keys
        self._keys: OrderedDict[tuple[str, str], _Key] = OrderedDict()

    def take(self, action: str, key: str) -> None:
        """Count one request; 429 RATE_LIMITED (counting nothing) when the key is over its rule."""
        if not self.enabled:
            return
        rule, now = self.rules[action], self._now()
        entry = self._entry(action, key, now)
        after = max(entry.tat, now) + rule.interval
        if after - now > rule.seconds:
            raise too_many(after - rule.seconds - now)
        entry.tat = after

    def check(self, action: str, key: str) -> None:
        """429 RATE_LIMITED when one more request (or failure) would be over the rule."""
        if not self.enabled:
            return
        entry = self._keys.get((action, key))
        if entry is None:
            return
        rule, now = self.rules[action], self._now()
        wait = entry.tat + rule.interval - rule.seconds - now
        if wait > 0:
            raise too_many(wait)

    def fail(self, action: str, key: str) -> None:
        """Count a failure; the one that uses up the rule starts a lockout (doubling each time)."""
        if not self.enabled:
            return
        rule, now = self.rules[action], self._now()
        entry = self._entry(action, key, now)
        entry.tat = max(entry.tat, now) + rule.interval
        if rule.lockout is not None and entry.tat + rule.interval - now > rule.seconds:
            entry.strikes += 1
            lock = min(rule.lockout * 2 ** (entry.strikes - 1), rule.max_lockout)
            # Locked until now + lock; then one more failure is allowed, which locks again.
            entry.tat = max(entry.tat, now + lock + rule.seconds - rule.interval)

    def forgive(self, action: str, key: str) -> None:
        """Forget the key's count and lockouts (a correct password after failures)."""
        self._keys.pop((action, key), None)

    def _now(self) -> float:
        return self._clock().timestamp()

    def _entry(self, action: str, key: str, now: float) -> _Key:
        entry = self._keys.get((action, key))
        if entry is None:
            self._forget_old(now)
            entry = self._keys[(action, key)] = _Key(tat=now)
        else:
            self._keys.move_to_end((action, key))
        return entry

    def _forget_old(self, now: float) -> None:
        # The least recently used keys first: drop those whose count has run out (keeping
        # strikes for as long as the longest lockout), and any beyond max_keys.
        while self._keys:
            (action, _), oldest = next(iter(self._keys.items()))
            rule = self.rules[action]
            memory = rule.max_lockout if oldest.strikes else 0.0
            if len(self._keys) < self._max_keys and oldest.tat + memory > now:
                return
            self._keys.popitem(last=False)


def too_many(wait_seconds: float) -> Problem:
    retry_after = max(1, math.ceil(wait_seconds))
    return Problem(
        429,
        RATE_LIMITED,
        f"too many requests; retry in {retry_after} s",
        headers={"Retry-After": str(retry_after)},
    )


def client_address(headers: Any, peer: str | None) -> str:
    """The client's address: X-Real-IP as the gateway sets it (it overwrites whatever the client
    sent), else the connection's peer. Services are reachable only through the gateway."""
    return headers.get("x-real-ip") or peer or "unknown"
