"""Operators' routes: parked sagas, listed and retried (admin only; `/api/ops/order/...` at
the gateway)."""

from fastapi import APIRouter

from order import parking
from order.schemas import HistoryOut, ParkedOrderOut, RetryOut
from shopkit.app import ClockDep, Db
from shopkit.auth import AdminPrincipal
from shopkit.openapi import problems
from shopkit.pagination import Cursor, Limit, Page

router = APIRouter(prefix="/ops", tags=["operations"])


@router.get(
    "/parked-orders", response_model=Page[ParkedOrderOut], responses=problems("INVALID_CURSOR")
)
async def parked_orders(
    db: Db, _: AdminPrincipal, limit: Limit = 20, cursor: Cursor = None
) -> Page[ParkedOrderOut]:
    """Orders whose saga stopped retrying, longest parked first, with history and last error."""
    rows, next_cursor = await parking.list_parked(db, limit=limit, cursor=cursor)
    items = [
        ParkedOrderOut(**{**r, "history": [HistoryOut(**h) for h in r["history"]]}) for r in rows
    ]
    return Page[ParkedOrderOut](items=items, next_cursor=next_cursor)


@router.post(
    "/parked-orders/{order_id}/retry",
    status_code=202,
    response_model=RetryOut,
    responses=problems((404, "ORDER_NOT_FOUND"), (409, "ORDER_NOT_PARKED")),
)
async def retry(order_id: str, db: Db, admin: AdminPrincipal, clock: ClockDep) -> RetryOut:
    """Unpark the order and resume its step; 404 ORDER_NOT_FOUND, 409 ORDER_NOT_PARKED."""
    now = clock()
    await parking.retry_parked(db, order_id=order_id, by=admin.user_id, now=now)
    return RetryOut(id=order_id, retried_at=now)
