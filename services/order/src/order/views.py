"""The order as clients see it: its HTTP shape, and the notification announcing its changes."""

from typing import NamedTuple

from fastapi.responses import Response

from order.saga import Saga
from order.schemas import ItemOut, OrderOut
from order.store.rows import OrderRow, saga_of

# PostgreSQL refuses a NOTIFY payload of 8000 bytes or more; an order of 50 lines is ~4 KB.
_MAX_NOTIFY = 7900


def order_out(row: OrderRow, saga: Saga | None = None) -> OrderOut:
    """The order as clients see it; `saga` when the caller has it already (else `row`'s)."""
    saga = saga or saga_of(row)
    return OrderOut(
        id=row.id,
        user_id=row.user_id,
        status=saga.status,
        items=[
            ItemOut(product_id=x.product_id, quantity=x.quantity, unit_price=x.unit_price)
            for x in saga.lines
        ],
        subtotal=saga.subtotal,
        discount=saga.discount,
        total=saga.total,
        coupon_id=saga.coupon_id,
        failure_code=saga.failure_code,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def json_response(body: str, status_code: int) -> Response:
    # Serialized by pydantic straight to text (JSONResponse would go through a dict and json).
    return Response(body, status_code=status_code, media_type="application/json")


def order_response(row: OrderRow, status_code: int, saga: Saga | None = None) -> Response:
    return json_response(order_out(row, saga).model_dump_json(), status_code)


class Progress(NamedTuple):
    """Where an order is: its status and the operation in flight (what `?wait` looks at)."""

    status: str
    operation: str | None

    @classmethod
    def of(cls, row: OrderRow) -> "Progress":
        return cls(row.status, row.operation)


def changed_payload(row: OrderRow, saga: Saga) -> str:
    """What a saga change NOTIFYs: `<order id> <status> <operation or -> [<order JSON>]`.

    When nothing is in flight any more (the step is DONE), the order as clients see it comes
    along if it fits: a request waiting for it then answers without reading it again."""
    head = f"{row.id} {row.status} {row.operation or '-'}"
    if row.step != "DONE":
        return head
    payload = f"{head} {order_out(row, saga).model_dump_json()}"
    return payload if len(payload.encode()) <= _MAX_NOTIFY else head


def read_changed(payload: str) -> tuple[str, Progress, str | None]:
    """A `changed_payload`: the order id, its progress and the order's JSON if it came along."""
    order_id, _, rest = payload.partition(" ")
    status, _, rest = rest.partition(" ")
    operation, _, body = rest.partition(" ")
    return order_id, Progress(status, None if operation in ("", "-") else operation), body or None
