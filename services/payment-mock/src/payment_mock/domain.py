"""The pure rules of how the simulated gateway answers: declines, timeouts and cancels."""

from collections.abc import Callable
from dataclasses import dataclass

APPROVED, DECLINED, CANCELLED = "APPROVED", "DECLINED", "CANCELLED"

# Returns a float in [0, 1), like random.Random.random; injectable so tests are deterministic.
Random = Callable[[], float]


@dataclass(frozen=True)
class Draw:
    declined: bool
    times_out: bool


def draw(*, decline_rate: float, timeout_rate: float, random: Random) -> Draw:
    """Two independent draws; since random() < 1, a rate of 1 always hits and 0 never does."""
    return Draw(declined=random() < decline_rate, times_out=random() < timeout_rate)


def answer_delay(*, latency_ms: int, times_out: bool, hang_seconds: float) -> float:
    """Seconds to wait before answering a POST /api/payments that has been recorded."""
    return latency_ms / 1000 + (hang_seconds if times_out else 0.0)


def status_after_cancel(status: str) -> str | None:
    """APPROVED and CANCELLED payments end CANCELLED; None when it cannot be cancelled."""
    return CANCELLED if status in (APPROVED, CANCELLED) else None
