"""A flood of one kind of library line is cut to one per window, with the count held back."""

import logging

from shopkit.logs import RepeatedLines


def record(name: str, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, None)


def test_a_repeated_aiokafka_line_shows_once_per_window_then_says_how_many_were_held() -> None:
    now = [100.0]
    repeats = RepeatedLines(window=5.0, clock=lambda: now[0])
    template = "Unable connect to node with id %s: %s"
    shown = [repeats.filter(record("aiokafka", template, 1, "refused")) for _ in range(1000)]
    assert shown.count(True) == 1
    # Another kind of line is its own.
    assert repeats.filter(record("aiokafka", "Unable to update metadata from %s", [1]))
    now[0] += 5.0
    later = record("aiokafka", template, 1, "refused")
    assert repeats.filter(later)
    assert later.getMessage() == (
        "Unable connect to node with id 1: refused (999 more like it held back)"
    )


def test_the_shops_own_lines_are_never_held_back() -> None:
    repeats = RepeatedLines(clock=lambda: 0.0)
    assert all(repeats.filter(record("shopkit.messaging", "handler failed")) for _ in range(50))
