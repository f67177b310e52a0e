"""What the saga knows about one order, and what one transition of it produces."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from contracts import Message
from order.domain import Debit, Line, ModifyPlan, Status

StepName = Literal[
    # placing: forward
    "RESERVING_STOCK",
    "RESERVING_COUPON",
    "DEBITING",
    "PAYING",
    # placing: compensation, in reverse order
    "VOIDING_PAYMENT",
    "REFUNDING",
    "RELEASING_COUPON",
    "RELEASING_STOCK",
    # cancel of a PAID order
    "CANCEL_PAYMENT",
    "CANCEL_REFUNDING",
    "CANCEL_RETURNING_STOCK",
    "CANCEL_RELEASING_COUPON",
    # modify of a PAID order
    "MODIFY_RESERVING",
    "MODIFY_REPRICING_COUPON",
    "MODIFY_DEBITING",
    "MODIFY_REFUNDING",
    "MODIFY_COMMITTING",
    "MODIFY_RELEASING",
    # nothing in flight (status PAID, FAILED or CANCELLED)
    "DONE",
]

# An order with one of these statuses takes no event any more.
ENDED: tuple[Status, ...] = ("FAILED", "CANCELLED")


@dataclass(frozen=True)
class Refund:
    """One wallet refund a step asks for, against the debit it gives money back from."""

    operation_id: str
    debit_operation_id: str
    amount: int


@dataclass(frozen=True)
class Saga:
    """Everything the saga knows about one order (saved as JSON on the order's row)."""

    order_id: str
    user_id: str
    lines: tuple[Line, ...]
    status: Status = "PENDING"
    step: StepName = "RESERVING_STOCK"
    coupon_id: str | None = None
    subtotal: int = 0
    discount: int = 0
    total: int = 0
    debits: tuple[Debit, ...] = ()
    refunds: tuple[Refund, ...] = ()
    waiting: tuple[str, ...] = ()  # operation ids of the commands the step still waits for
    failure_code: str | None = None
    operation: Literal["CANCEL", "MODIFY"] | None = None
    modify_seq: int = 0
    modify: ModifyPlan | None = None
    modify_outcome: str | None = None  # APPLIED, or the code the last modify failed with
    payment_id: str | None = None
    paid_at: datetime | None = None

    def op(self, name: str) -> str:
        return f"{self.order_id}:{name}"

    def modify_op(self, name: str) -> str:
        return f"{self.order_id}:modify:{self.modify_seq}:{name}"


@dataclass(frozen=True)
class Transition:
    """The saga after one event, the messages to send and the history lines to write."""

    saga: Saga
    messages: tuple[Message, ...] = ()
    history: tuple[tuple[str, str], ...] = ()  # (event, detail)
    applied: bool = True
    # Why the saga stopped retrying its step: the order waits for an operator (or a late reply).
    parked: str | None = None


@dataclass
class Effects:
    """What a handler does besides changing the saga, collected while it runs."""

    now: datetime
    messages: list[Message] = field(default_factory=list)
    history: list[tuple[str, str]] = field(default_factory=list)
    parked: str | None = None
    resend: bool = False  # send the step's commands again, to the operations still waited for


# A handler's answer: the saga as it changed, and the step it goes to (its own step: it stays).
Moved = tuple[Saga, StepName]
