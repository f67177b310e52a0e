"""Public sales analytics routes: no authentication, read-only."""

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request

from analytics import service
from analytics.domain import default_from, local_day, range_problem, window
from analytics.schemas import PopularProductOut, SalesBucketOut
from shopkit.app import ClockDep, Db
from shopkit.errors import VALIDATION_CODES, Problem
from shopkit.openapi import define, problems

VALIDATION_CODES.update(
    days="INVALID_DAYS",
    metric="INVALID_METRIC",
    period="INVALID_PERIOD",
    to="INVALID_DATE",
    **{"from": "INVALID_DATE"},
)

define(
    "analytics",
    (
        422,
        "INVALID_DAYS",
        "`days` must be 1..365.",
        "query.days: Input should be less than or equal to 365",
    ),
    (
        422,
        "INVALID_METRIC",
        "`metric` is quantity or amount.",
        "query.metric: Input should be 'quantity' or 'amount'",
    ),
    (
        422,
        "INVALID_PERIOD",
        "`period` is day, week or month.",
        "query.period: Input should be 'day', 'week' or 'month'",
    ),
    (
        422,
        "INVALID_DATE",
        "`from`/`to` must be ISO dates (YYYY-MM-DD).",
        "query.from: Input should be a valid date",
    ),
    (
        422,
        "INVALID_RANGE",
        "`from` is after `to`, or the range spans too many days for its period.",
        "from must not be after to",
    ),
)
router = APIRouter(prefix="/api", tags=["analytics"])

Days = Annotated[int, Query(ge=1, le=365, description="calendar days, including today")]
Limit = Annotated[int, Query(ge=1, le=100, description="how many products (max 100)")]
Metric = Annotated[Literal["quantity", "amount"], Query(description="what to rank by")]
Category = Annotated[str | None, Query(min_length=1, max_length=100)]
ProductId = Annotated[str | None, Query(min_length=1, max_length=100)]
PeriodQuery = Annotated[Literal["day", "week", "month"], Query(description="bucket size")]
From = Annotated[date | None, Query(alias="from", description="first day, inclusive")]
To = Annotated[date | None, Query(alias="to", description="last day, inclusive (default today)")]


def shop_today(request: Request, clock: ClockDep) -> date:
    return local_day(clock(), request.app.state.settings.timezone)


@router.get(
    "/products/popular",
    response_model=list[PopularProductOut],
    responses=problems("INVALID_DAYS", "INVALID_METRIC"),
)
async def popular(
    request: Request,
    db: Db,
    clock: ClockDep,
    days: Days = 3,
    limit: Limit = 5,
    metric: Metric = "quantity",
    category: Category = None,
) -> list[service.Ranked]:
    """Best-selling products of the last `days` calendar days (shop time), ties by product id."""
    start, end = window(shop_today(request, clock), days)
    return await service.popular_products(
        db, start=start, end=end, limit=limit, metric=metric, category=category
    )


@router.get(
    "/stats/sales",
    response_model=list[SalesBucketOut],
    responses=problems("INVALID_PERIOD", "INVALID_DATE", "INVALID_RANGE"),
)
async def sales(
    request: Request,
    db: Db,
    clock: ClockDep,
    period: PeriodQuery = "day",
    start: From = None,
    end: To = None,
    category: Category = None,
    product_id: ProductId = None,
) -> list[SalesBucketOut]:
    """Paid sales per day, ISO week or calendar month from `from` to `to`; empty buckets are 0."""
    end = end or shop_today(request, clock)
    start = start or default_from(end, period)
    if problem := range_problem(start, end, period):
        raise Problem(422, "INVALID_RANGE", problem)
    rows = await service.sales_statistics(
        db, start=start, end=end, period=period, category=category, product_id=product_id
    )
    return [SalesBucketOut(period_start=s, **vars(f)) for s, f in rows]
