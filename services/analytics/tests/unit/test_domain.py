"""Pure sales rules: counting, cancels and modifies, calendars and buckets."""

from datetime import UTC, date, datetime

from analytics.domain import (
    Figures,
    Projection,
    Sale,
    buckets,
    default_from,
    local_day,
    period_start,
    range_problem,
    window,
)

DAY = date(2026, 3, 18)
A1 = Sale("a", "books", 2, 2_000)
A2 = Sale("a", "books", 1, 1_000)
B = Sale("b", "books", 3, 900)
C = Sale("c", "shoes", 1, 50_000)


def figures(f: Figures) -> tuple[int, int, int]:
    return f.quantity, f.amount, f.orders


def test_an_order_counts_once_per_product_category_and_day_however_many_lines() -> None:
    p = Projection(orders={"o1": None})
    p.paid("o1", day=DAY, sales=(A1, A2, B, C))

    assert figures(p.deltas.by_product["a", DAY, "books"]) == (3, 3_000, 1)
    assert figures(p.deltas.by_category["books", DAY]) == (6, 3_900, 1)
    assert figures(p.deltas.by_category["shoes", DAY]) == (1, 50_000, 1)
    assert figures(p.deltas.by_day[DAY]) == (7, 53_900, 1)


def test_a_repeated_paid_event_changes_nothing() -> None:
    p = Projection(orders={"o1": None})
    p.paid("o1", day=DAY, sales=(A1,))
    p.paid("o1", day=DAY, sales=(A1,))
    assert figures(p.deltas.by_day[DAY]) == (2, 2_000, 1)


def test_a_cancel_takes_back_what_was_counted_on_the_paid_day_once() -> None:
    p = Projection(orders={"o1": None})
    p.paid("o1", day=DAY, sales=(A1, C))
    p.cancelled("o1")
    p.cancelled("o1")

    assert all(f.is_zero() for f in p.deltas.by_product.values())
    assert all(f.is_zero() for f in p.deltas.by_day.values())
    assert p.orders["o1"] is not None and p.orders["o1"].status == "CANCELLED"


def test_a_cancel_of_an_unknown_order_counts_nothing() -> None:
    p = Projection(orders={"o1": None})
    p.cancelled("o1")
    assert p.deltas.by_day == {} and p.changed == set()


def test_a_modify_replaces_the_lines_and_keeps_one_order() -> None:
    p = Projection(orders={"o1": None})
    p.paid("o1", day=DAY, sales=(A1, B))
    p.modified("o1", day=date(2030, 1, 1), sales=(A2, C))

    assert figures(p.deltas.by_product["a", DAY, "books"]) == (1, 1_000, 1)
    assert figures(p.deltas.by_product["b", DAY, "books"]) == (0, 0, 0)
    assert figures(p.deltas.by_category["books", DAY]) == (1, 1_000, 1)
    assert figures(p.deltas.by_day[DAY]) == (2, 51_000, 1)


def test_a_modify_of_an_order_never_seen_paid_counts_its_new_lines() -> None:
    p = Projection(orders={"o1": None})
    p.modified("o1", day=DAY, sales=(C,))
    assert figures(p.deltas.by_day[DAY]) == (1, 50_000, 1)


def test_the_day_is_the_shop_calendar_date() -> None:
    assert local_day(datetime(2026, 3, 17, 15, 0, tzinfo=UTC), "Asia/Seoul") == DAY
    assert local_day(datetime(2026, 3, 17, 14, 59, 59, tzinfo=UTC), "Asia/Seoul") == date(
        2026, 3, 17
    )
    assert local_day(datetime(2026, 3, 17, 15, 0), "UTC") == date(2026, 3, 17)


def test_the_window_includes_today() -> None:
    assert window(DAY, 3) == (date(2026, 3, 16), DAY)
    assert window(DAY, 1) == (DAY, DAY)


def test_periods_start_on_monday_and_the_first_of_the_month() -> None:
    assert period_start(date(2026, 3, 22), "week") == date(2026, 3, 16)  # Sunday -> Monday
    assert period_start(date(2026, 3, 16), "week") == date(2026, 3, 16)
    assert period_start(date(2026, 2, 28), "month") == date(2026, 2, 1)


def test_every_bucket_is_present_and_only_days_in_range_count() -> None:
    daily = {
        date(2025, 12, 31): Figures(9, 9, 9),  # before the range
        date(2026, 1, 1): Figures(1, 10, 1),
        date(2026, 3, 31): Figures(2, 20, 1),
    }
    months = buckets(daily, start=date(2026, 1, 1), end=date(2026, 3, 31), period="month")
    assert [(s, figures(f)) for s, f in months] == [
        (date(2026, 1, 1), (1, 10, 1)),
        (date(2026, 2, 1), (0, 0, 0)),
        (date(2026, 3, 1), (2, 20, 1)),
    ]
    weeks = buckets(daily, start=date(2026, 1, 1), end=date(2026, 1, 12), period="week")
    assert [s for s, _ in weeks] == [date(2025, 12, 29), date(2026, 1, 5), date(2026, 1, 12)]
    days = buckets({}, start=date(2024, 2, 27), end=date(2024, 3, 1), period="day")
    assert [s.day for s, _ in days] == [27, 28, 29, 1]


def test_ranges_are_bounded() -> None:
    assert range_problem(DAY, DAY, "day") is None
    assert range_problem(date(2026, 1, 1), date(2026, 12, 31), "day") is None
    assert range_problem(date(2024, 1, 1), date(2024, 12, 31), "day") is None  # 366 days
    assert range_problem(date(2024, 1, 1), date(2025, 1, 1), "day") is not None
    assert range_problem(DAY, date(2026, 3, 17), "week") is not None
    assert range_problem(date(2021, 3, 20), DAY, "month") is None
    assert range_problem(date(2020, 1, 1), DAY, "month") is not None


def test_default_ranges() -> None:
    assert default_from(DAY, "day") == date(2026, 2, 17)
    assert default_from(DAY, "week") == date(2025, 12, 29)
    assert default_from(DAY, "month") == date(2025, 4, 1)
