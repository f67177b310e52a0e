"""Order routes: place, read, list, history, cancel, modify."""

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import Response

from order import service
from order.schemas import HistoryOut, ModifyOrderIn, OrderOut, PlaceOrderIn
from order.settings import Settings
from order.views import Progress, json_response, order_out, order_response
from order.waiting import Waiters, WaitOutcome
from shopkit import tracing
from shopkit.app import ClockDep, Db, from_state
from shopkit.auth import CurrentPrincipal
from shopkit.db import Transaction
from shopkit.errors import Problem
from shopkit.idempotency import run_idempotent
from shopkit.limits import Limiter
from shopkit.openapi import Responses, define, problems
from shopkit.pagination import Cursor, Limit, Page

router = APIRouter(prefix="/api", tags=["orders"])
_UNCHANGED = "the order was left unchanged"
define(
    "order",
    (404, "ORDER_NOT_FOUND", "No order with this id.", "no order 5d41402a"),
    (409, "ORDER_NOT_CANCELLABLE", "Only a PAID order can be cancelled.", "order is PENDING"),
    (409, "ORDER_NOT_MODIFIABLE", "Only a PAID order can be modified.", "order is CANCELLED"),
    (409, "ORDER_NOT_PARKED", "The order's saga is not parked.", "the order is not parked"),
    # A modify waited for (?wait=true) that could not be done: the order is left unchanged.
    (409, "OUT_OF_STOCK", "Modify: not enough stock for the new lines.", _UNCHANGED),
    (
        409,
        "PRODUCT_NOT_FOUND",
        "Modify: a new line names a product that does not exist.",
        _UNCHANGED,
    ),
    (409, "INSUFFICIENT_BALANCE", "Modify: the wallet cannot pay the extra amount.", _UNCHANGED),
    (
        409,
        "COUPON_NOT_USABLE",
        "Modify: the new subtotal is below the coupon's minimum.",
        _UNCHANGED,
    ),
)
_ORDER_OUT: dict[str, Any] = {"model": OrderOut}
_PLACED: Responses = {
    200: {**_ORDER_OUT, "description": "?wait=true: the order reached PAID or FAILED in time"},
    202: {
        **_ORDER_OUT,
        "description": "PENDING: accepted, the saga runs (also with ?wait=true when it did not"
        " end within 10 s, and for a repeated Idempotency-Key: the first answer again)",
    },
}
_REQUESTED: Responses = {
    200: {**_ORDER_OUT, "description": "?wait=true: done"},
    202: {**_ORDER_OUT, "description": "accepted (also with ?wait=true when it took over 10 s)"},
}
_MINE = ("FORBIDDEN", "ORDER_NOT_FOUND")


SettingsDep = Annotated[Settings, Depends(from_state("settings"))]
WaitersDep = Annotated[Waiters, Depends(from_state("waiters"))]
PlacementDep = Annotated[service.OrderPlacement, Depends(from_state("placement"))]
LimitsDep = Annotated[Limiter, Depends(from_state("limits"))]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]
Wait = Annotated[bool, Query(description="wait up to 10 s for the final state")]


def _waited(waited: WaitOutcome) -> Response:
    """200 with the order once the wait's condition held, 202 with it as it is if not."""
    return json_response(waited.order_json(), 200 if waited.done else 202)


def _settled(progress: Progress) -> bool:
    return progress.status != "PENDING"


@router.post(
    "/orders",
    status_code=202,
    response_model=OrderOut,
    responses={
        **_PLACED,
        **problems(
            "FORBIDDEN",
            "IDEMPOTENCY_IN_PROGRESS",
            "IDEMPOTENCY_KEY_REUSED",
            "INVALID_IDEMPOTENCY_KEY",
        ),
    },
)
async def place(
    body: PlaceOrderIn,
    db: Db,
    principal: CurrentPrincipal,
    clock: ClockDep,
    settings: SettingsDep,
    waiters: WaitersDep,
    placement: PlacementDep,
    limits: LimitsDep,
    wait: Wait = False,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Place an order (202 PENDING); with ?wait=true, 200 once it is PAID or FAILED;
    429 RATE_LIMITED past the user's orders per minute."""
    principal.require_self_or_admin(body.user_id)
    limits.take("order", body.user_id)

    items = [(i.product_id, i.quantity) for i in body.items]
    if idempotency_key is None:
        # Saved with the orders of concurrent requests, in one statement and one commit.
        row, saga = await placement.place(
            user_id=body.user_id, items=items, coupon_id=body.coupon_id, now=clock()
        )
        if not wait:
            return order_response(row, 202, saga)
        order_id, placed_now = row.id, True
    else:
        placed_now = False  # stays False when the answer is a replay of an earlier request

        async def work(tx: Transaction) -> OrderOut:
            nonlocal placed_now
            placed_now = True
            row = await service.place_order(
                tx,
                settings=settings,
                user_id=body.user_id,
                items=items,
                coupon_id=body.coupon_id,
                now=clock(),
            )
            return order_out(row)

        answer = await run_idempotent(
            db,
            scope=f"orders:{principal.user_id}",
            key=idempotency_key,
            request=body,
            status_code=202,
            work=work,
        )
        if not wait or answer.status_code != 202:
            return answer
        order_id = json.loads(bytes(answer.body))["id"]
    waited = await waiters.wait(
        db, order_id, until=_settled, timeout=settings.wait_seconds, unmet=placed_now
    )
    return _waited(waited)


@router.get("/orders/{order_id}", response_model=OrderOut, responses=problems(*_MINE))
async def read(order_id: str, db: Db, principal: CurrentPrincipal) -> OrderOut:
    """One order; 404 ORDER_NOT_FOUND."""
    row = await service.get_order(
        db, order_id=order_id, user_id=principal.user_id, is_admin=principal.is_admin
    )
    return order_out(row)


@router.get(
    "/orders/{order_id}/history", response_model=list[HistoryOut], responses=problems(*_MINE)
)
async def order_history(order_id: str, db: Db, principal: CurrentPrincipal) -> list[HistoryOut]:
    """Every state change and compensation of the order, oldest first; each entry names the
    order's trace (`trace_id`) when one was recorded."""
    order, entries = await service.order_history(
        db, order_id=order_id, user_id=principal.user_id, is_admin=principal.is_admin
    )
    trace_id = tracing.trace_id_of(order.traceparent)
    return [
        HistoryOut(status=h.status, event=h.event, detail=h.detail, at=h.at, trace_id=trace_id)
        for h in entries
    ]


@router.get(
    "/users/{user_id}/orders",
    response_model=Page[OrderOut],
    responses=problems("FORBIDDEN", "INVALID_CURSOR"),
)
async def user_orders(
    user_id: str, db: Db, principal: CurrentPrincipal, limit: Limit = 20, cursor: Cursor = None
) -> Page[OrderOut]:
    """The user's orders, newest first."""
    principal.require_self_or_admin(user_id)
    rows, next_cursor = await service.list_orders(db, user_id=user_id, limit=limit, cursor=cursor)
    return Page[OrderOut](items=[order_out(r) for r in rows], next_cursor=next_cursor)


@router.post(
    "/orders/{order_id}/cancel",
    status_code=202,
    response_model=OrderOut,
    responses={**_REQUESTED, **problems(*_MINE, "ORDER_NOT_CANCELLABLE")},
)
async def cancel(
    order_id: str,
    db: Db,
    principal: CurrentPrincipal,
    clock: ClockDep,
    settings: SettingsDep,
    waiters: WaitersDep,
    wait: Wait = False,
) -> Response:
    """Cancel a PAID order: refund, restock, coupon back; 409 ORDER_NOT_CANCELLABLE."""
    row = await service.request_cancel(
        db,
        settings=settings,
        order_id=order_id,
        user_id=principal.user_id,
        is_admin=principal.is_admin,
        now=clock(),
    )
    if not wait:
        return order_response(row, 202)
    waited = await waiters.wait(
        db, order_id, until=lambda r: r.status == "CANCELLED", timeout=settings.wait_seconds
    )
    return _waited(waited)


@router.patch(
    "/orders/{order_id}",
    status_code=202,
    response_model=OrderOut,
    responses={
        **_REQUESTED,
        **problems(
            *_MINE,
            "ORDER_NOT_MODIFIABLE",
            "OUT_OF_STOCK",
            (409, "PRODUCT_NOT_FOUND"),
            "INSUFFICIENT_BALANCE",
            "COUPON_NOT_USABLE",
        ),
    },
)
async def modify(
    order_id: str,
    body: ModifyOrderIn,
    db: Db,
    principal: CurrentPrincipal,
    clock: ClockDep,
    settings: SettingsDep,
    waiters: WaitersDep,
    wait: Wait = False,
) -> Response:
    """Replace a PAID order's lines; with ?wait=true, 409 with the reason if it cannot be done."""
    row, seq = await service.request_modify(
        db,
        settings=settings,
        order_id=order_id,
        user_id=principal.user_id,
        is_admin=principal.is_admin,
        items=[(i.product_id, i.quantity) for i in body.items],
        now=clock(),
    )
    if not wait:
        return order_response(row, 202)
    waited = await waiters.wait(
        db,
        order_id,
        until=lambda r: r.operation != "MODIFY",
        timeout=settings.wait_seconds,
        read=True,  # the modify's outcome is in the saga
    )
    assert waited.row is not None
    refusal = service.modify_refusal(waited.row, seq) if waited.done else None
    if refusal is not None:
        raise Problem(409, refusal, _UNCHANGED)
    return order_response(waited.row, 200 if waited.done else 202)
