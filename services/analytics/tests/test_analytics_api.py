"""Popular products and sales statistics, fed real order events through real Kafka.

Every test freezes the shop clock in its own year, so the session's shared topics and database
never mix one test's sales into another's answers.
"""

import uuid
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from contracts.catalog import ProductCreated
from contracts.order import OrderCancelled, OrderModified, SoldLine
from shopkit.outbox import envelope

SEOUL = ZoneInfo("Asia/Seoul")


def ids(prefix: str, n: int) -> list[str]:
    tag = uuid.uuid4().hex[:6]
    return [f"{prefix}-{tag}-{i}" for i in range(n)]


async def popular(client: httpx.AsyncClient, **params: str | int) -> list[dict]:
    response = await client.get("/api/products/popular", params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def stats(client: httpx.AsyncClient, **params: str | int) -> list[dict]:
    response = await client.get("/api/stats/sales", params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def test_top_five_by_quantity_of_the_last_three_days(
    shop, analytics: httpx.AsyncClient
) -> None:
    today = date(2030, 6, 12)
    shop.today(today)
    products = ids("top", 8)
    sold = [50, 40, 30, 20, 10, 5, 1]
    for i, (product, quantity) in enumerate(zip(products, sold, strict=False)):
        # Spread each product's sales over the three days of the window, in several orders.
        first = quantity // 2
        await shop.paid([(product, first, 1_000)], on=today - timedelta(days=i % 3))
        if quantity - first:
            await shop.paid([(product, quantity - first, 1_000)], on=today)
    await shop.paid([(products[7], 100, 1_000)], on=today - timedelta(days=5))
    await shop.caught_up()

    top = await popular(analytics)

    assert [(p["rank"], p["product_id"], p["quantity"]) for p in top] == [
        (1, products[0], 50),
        (2, products[1], 40),
        (3, products[2], 30),
        (4, products[3], 20),
        (5, products[4], 10),
    ]
    assert [p["amount"] for p in top] == [50_000, 40_000, 30_000, 20_000, 10_000]
    assert top[0]["name"] == f"name of {products[0]}" and top[0]["category"] == "misc"
    assert products[7] not in {p["product_id"] for p in await popular(analytics, limit=100)}
    assert (await popular(analytics, days=6, limit=1))[0]["product_id"] == products[7]


async def test_the_three_day_window_is_three_shop_calendar_dates(
    shop, analytics: httpx.AsyncClient
) -> None:
    today = date(2031, 3, 10)
    shop.today(today)
    before, first, last, tomorrow = ids("window", 4)

    def seoul(day: date, at: time) -> datetime:
        return datetime.combine(day, at, SEOUL)

    # In UTC the first two are on the same date: only the Seoul calendar separates them.
    await shop.paid([(before, 7, 100)], on=seoul(today - timedelta(days=3), time(23, 59, 59)))
    await shop.paid([(first, 3, 100)], on=seoul(today - timedelta(days=2), time(0, 0)))
    await shop.paid([(last, 2, 100)], on=seoul(today, time(23, 59, 59)))
    await shop.paid([(tomorrow, 9, 100)], on=seoul(today + timedelta(days=1), time(0, 0)))
    await shop.caught_up()

    assert {p["product_id"]: p["quantity"] for p in await popular(analytics)} == {
        first: 3,
        last: 2,
    }
    assert [p["product_id"] for p in await popular(analytics, days=1)] == [last]
    assert [p["product_id"] for p in await popular(analytics, days=4)] == [before, first, last]


async def test_a_cancelled_order_is_subtracted(shop, analytics: httpx.AsyncClient) -> None:
    today = date(2032, 5, 20)
    shop.today(today)
    a, b = ids("cancel", 2)
    big = await shop.paid([(a, 5, 1_000), (b, 1, 500)], on=today - timedelta(days=1))
    await shop.paid([(a, 3, 1_000)], on=today)
    await shop.paid([(b, 6, 500)], on=today)
    await shop.caught_up()
    assert [p["product_id"] for p in await popular(analytics)] == [a, b]

    cancel = OrderCancelled(
        order_id=big.order_id,
        user_id=big.user_id,
        lines=big.lines,
        total=big.total,
        paid_at=big.paid_at,
        cancelled_at=shop.clock(),
    )
    await shop.publish(cancel)
    await shop.caught_up()

    assert [(p["product_id"], p["quantity"], p["amount"]) for p in await popular(analytics)] == [
        (b, 6, 3_000),
        (a, 3, 3_000),
    ]
    [yesterday, now] = await stats(
        analytics, period="day", **{"from": str(today - timedelta(days=1)), "to": str(today)}
    )
    assert (yesterday["quantity"], yesterday["amount"], yesterday["orders"]) == (0, 0, 0)
    assert (now["quantity"], now["amount"], now["orders"]) == (9, 6_000, 2)


async def test_a_modified_order_adjusts_the_day_it_was_paid(
    shop, analytics: httpx.AsyncClient
) -> None:
    today = date(2032, 9, 9)
    shop.today(today)
    a, b, c = ids("modify", 3)
    order = await shop.paid([(a, 4, 1_000), (b, 2, 1_000)], on=today - timedelta(days=2))
    lines = (
        SoldLine(product_id=a, name="A", category="misc", quantity=1, unit_price=1_000),
        SoldLine(product_id=c, name="C", category="misc", quantity=6, unit_price=1_000),
    )
    modify = OrderModified(
        order_id=order.order_id,
        user_id=order.user_id,
        previous_lines=order.lines,
        lines=lines,
        total=7_000,
        paid_at=order.paid_at,
        modified_at=shop.clock(),
    )
    await shop.publish(modify)
    await shop.caught_up()

    assert [(p["product_id"], p["quantity"]) for p in await popular(analytics)] == [(c, 6), (a, 1)]
    day = str(today - timedelta(days=2))
    [bucket] = await stats(analytics, period="day", **{"from": day, "to": day})
    assert (bucket["quantity"], bucket["amount"], bucket["orders"]) == (7, 7_000, 1)


async def test_ranking_by_amount_differs_from_ranking_by_quantity(
    shop, analytics: httpx.AsyncClient
) -> None:
    today = date(2033, 2, 1)
    shop.today(today)
    cheap, dear = ids("amount", 2)
    await shop.paid([(cheap, 10, 100), (dear, 2, 5_000)], on=today)
    await shop.caught_up()

    by_quantity = await popular(analytics, metric="quantity")
    by_amount = await popular(analytics, metric="amount")

    assert [(p["product_id"], p["quantity"], p["amount"]) for p in by_quantity] == [
        (cheap, 10, 1_000),
        (dear, 2, 10_000),
    ]
    assert [(p["rank"], p["product_id"]) for p in by_amount] == [(1, dear), (2, cheap)]


async def test_ties_break_by_product_id(shop, analytics: httpx.AsyncClient) -> None:
    today = date(2034, 7, 7)
    shop.today(today)
    tag = uuid.uuid4().hex[:6]
    c, a, b = f"tie-{tag}-c", f"tie-{tag}-a", f"tie-{tag}-b"
    for product in (c, a, b):
        await shop.paid([(product, 4, 250)], on=today)
    await shop.caught_up()

    assert [p["product_id"] for p in await popular(analytics)] == [a, b, c]
    assert [p["product_id"] for p in await popular(analytics, metric="amount")] == [a, b, c]


async def test_category_filter(shop, analytics: httpx.AsyncClient) -> None:
    today = date(2035, 4, 4)
    shop.today(today)
    book, pen, shoe = ids("cat", 3)
    books, shoes = f"books-{uuid.uuid4().hex[:6]}", f"shoes-{uuid.uuid4().hex[:6]}"
    await shop.paid([(book, 2, 10_000, books), (shoe, 9, 50_000, shoes)], on=today)
    await shop.paid([(pen, 5, 1_000, books)], on=today)
    # The catalog's name is what the answers show, even when it arrives after the sale.
    await shop.publish(
        ProductCreated(
            product_id=book, name="A Book", category=books, price=10_000, created_at=shop.clock()
        )
    )
    await shop.caught_up()

    only_books = await popular(analytics, category=books)
    assert [(p["product_id"], p["quantity"], p["category"]) for p in only_books] == [
        (pen, 5, books),
        (book, 2, books),
    ]
    assert only_books[1]["name"] == "A Book"
    assert [p["product_id"] for p in await popular(analytics, category=shoes)] == [shoe]
    assert await popular(analytics, category="no-such-category") == []
    [day] = await stats(analytics, category=books, **{"from": str(today), "to": str(today)})
    assert (day["quantity"], day["amount"], day["orders"]) == (7, 25_000, 2)
    [day] = await stats(analytics, product_id=shoe, **{"from": str(today), "to": str(today)})
    assert (day["quantity"], day["amount"], day["orders"]) == (9, 450_000, 1)


async def test_day_week_and_month_buckets_sum_to_the_seeded_totals(
    shop, analytics: httpx.AsyncClient
) -> None:
    start, end = date(2036, 1, 28), date(2036, 3, 3)  # a Monday in the middle, three months
    shop.today(end)
    one, two = ids("stats", 2)
    seeded = {
        date(2036, 1, 28): [(one, 2, 1_000)],
        date(2036, 2, 1): [(one, 1, 1_000), (two, 3, 700)],
        date(2036, 2, 2): [(two, 1, 700)],  # a Sunday: the week of Jan 27
        date(2036, 2, 29): [(one, 4, 1_000)],
        date(2036, 3, 3): [(two, 2, 700)],
    }
    for day, lines in seeded.items():
        await shop.paid(lines, on=day)
    await shop.paid([(one, 50, 1_000)], on=date(2036, 3, 4))  # after the range
    await shop.caught_up()
    span = {"from": str(start), "to": str(end)}

    days = await stats(analytics, period="day", **span)
    weeks = await stats(analytics, period="week", **span)
    months = await stats(analytics, period="month", **span)

    assert len(days) == 36 and days[0]["period_start"] == "2036-01-28"
    assert {d["period_start"]: d["quantity"] for d in days if d["quantity"]} == {
        "2036-01-28": 2,
        "2036-02-01": 4,
        "2036-02-02": 1,
        "2036-02-29": 4,
        "2036-03-03": 2,
    }
    assert [w["period_start"] for w in weeks] == [
        str(date(2036, 1, 28) + timedelta(weeks=n)) for n in range(6)
    ]
    assert [w["quantity"] for w in weeks] == [7, 0, 0, 0, 4, 2]
    assert [(m["period_start"], m["quantity"]) for m in months] == [
        ("2036-01-01", 2),
        ("2036-02-01", 9),
        ("2036-03-01", 2),
    ]
    totals = (13, 2_000 + 1_000 + 2_100 + 700 + 4_000 + 1_400, 5)
    for buckets in (days, weeks, months):
        summed = tuple(sum(b[f] for b in buckets) for f in ("quantity", "amount", "orders"))
        assert summed == totals
    one_weeks = await stats(analytics, period="week", product_id=one, **span)
    assert [w["quantity"] for w in one_weeks] == [3, 0, 0, 0, 4, 0]


async def test_a_duplicated_event_counts_once(shop, analytics: httpx.AsyncClient) -> None:
    today = date(2037, 8, 15)
    shop.today(today)
    [product] = ids("dup", 1)
    order = await shop.paid([(product, 3, 2_000)], on=today)
    first = shop.published[-1]
    await shop.publish(order, envelope=first)
    # A later message with the same key lands on the same partition, behind the duplicate.
    later = shop.order([(product, 2, 2_000)], on=today)
    await shop.publish(later, envelope=envelope(later).model_copy(update={"key": order.order_id}))
    await shop.caught_up()

    [top] = await popular(analytics)
    assert (top["product_id"], top["quantity"], top["amount"]) == (product, 5, 10_000)
    [day] = await stats(analytics, **{"from": str(today), "to": str(today)})
    assert (day["quantity"], day["orders"]) == (5, 2)


@pytest.mark.parametrize(
    ("path", "params", "code"),
    [
        ("/api/products/popular", {"days": 0}, "INVALID_DAYS"),
        ("/api/products/popular", {"days": 366}, "INVALID_DAYS"),
        ("/api/products/popular", {"days": "three"}, "INVALID_DAYS"),
        ("/api/products/popular", {"limit": 101}, "VALIDATION_ERROR"),
        ("/api/products/popular", {"metric": "price"}, "INVALID_METRIC"),
        ("/api/products/popular", {"category": "a\x00b"}, "INVALID_CHARACTER"),
        ("/api/stats/sales", {"period": "year"}, "INVALID_PERIOD"),
        ("/api/stats/sales", {"product_id": "p\x00"}, "INVALID_CHARACTER"),
        ("/api/stats/sales", {"from": "2030-02-30"}, "INVALID_DATE"),
        ("/api/stats/sales", {"from": "2030-02-02", "to": "2030-02-01"}, "INVALID_RANGE"),
        ("/api/stats/sales", {"from": "2030-01-01", "to": "2031-01-02"}, "INVALID_RANGE"),
        (
            "/api/stats/sales",
            {"period": "month", "from": "2020-01-01", "to": "2030-01-01"},
            "INVALID_RANGE",
        ),
    ],
)
async def test_bad_parameters_are_refused_with_a_stable_code(
    analytics: httpx.AsyncClient, path: str, params: dict, code: str
) -> None:
    response = await analytics.get(path, params=params)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code


async def test_defaults_of_the_statistics_range(shop, analytics: httpx.AsyncClient) -> None:
    shop.today(date(2042, 3, 15))
    assert len(await stats(analytics)) == 30
    assert len(await stats(analytics, period="week")) == 12
    months = await stats(analytics, period="month")
    assert (months[0]["period_start"], months[-1]["period_start"]) == ("2041-04-01", "2042-03-01")
    assert all(m["quantity"] == 0 for m in months)


async def test_an_unreadable_event_is_dead_lettered_and_does_not_block(
    shop, analytics: httpx.AsyncClient
) -> None:
    today = date(2039, 10, 1)
    shop.today(today)
    [product] = ids("poison", 1)
    good = await shop.paid([(product, 2, 100)], on=today)
    sent = envelope(good)
    broken = sent.model_copy(update={"payload": {**sent.payload, "lines": "nonsense"}})
    await shop.publish(good, envelope=broken)
    await shop.paid([(product, 1, 100)], on=today)
    await shop.caught_up()

    dead = await shop.kafka.wait_for(
        "order.events.dlt",
        lambda e: e["causation_id"] == str(broken.message_id),
    )
    assert dead[0]["payload"]["consumer"] == "analytics-projection"
    [top] = await popular(analytics)
    assert (top["product_id"], top["quantity"]) == (product, 3)
