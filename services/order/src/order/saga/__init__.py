"""The order saga, pure: `advance(saga, event, now) -> Transition(saga, messages, history)`.

`table.TABLE` is the whole saga: what each step sends and, for each event it takes, the
handler and the steps it may lead to; the handlers are in `place`, `cancel` and `modify`. A
reply is applied only when the current step takes its type and waits for its operation id,
so duplicates and stale replies change nothing. A step that is not a forward step never gives
up silently: after bounded attempts its transition is `parked` (the order stays as it is,
still waiting for its replies) for an operator to list and retry.
"""

from dataclasses import replace
from datetime import datetime
from typing import cast

from contracts import Message
from order.domain import Line
from order.saga.diagram import mermaid_state_diagram
from order.saga.events import (
    CancelRequested,
    DeadlinePassed,
    Event,
    ModifyRequested,
    PaymentApproved,
    PaymentDeclined,
    PaymentsCancelled,
    PaymentTimedOut,
    ProviderCancelFailed,
    Reply,
)
from order.saga.state import ENDED, Effects, Saga, StepName, Transition
from order.saga.table import (
    COMMANDS,
    PROVIDER_STEPS,
    REPLIES,
    START,
    TABLE,
    TRANSITIONS,
    deadline_of,
)

__all__ = [
    "COMMANDS",
    "PROVIDER_STEPS",
    "REPLIES",
    "TABLE",
    "TRANSITIONS",
    "CancelRequested",
    "DeadlinePassed",
    "Event",
    "ModifyRequested",
    "PaymentApproved",
    "PaymentDeclined",
    "PaymentTimedOut",
    "PaymentsCancelled",
    "ProviderCancelFailed",
    "Saga",
    "StepName",
    "Transition",
    "advance",
    "deadline_of",
    "mermaid_state_diagram",
    "new_order",
]


def new_order(
    *,
    order_id: str,
    user_id: str,
    items: tuple[tuple[str, int], ...],
    coupon_id: str | None,
    now: datetime,
) -> Transition:
    """A placed order: PENDING, asking the catalog for its stock."""
    saga = Saga(
        order_id=order_id,
        user_id=user_id,
        lines=tuple(Line(p, q) for p, q in items),
        coupon_id=coupon_id,
    )
    fx = Effects(now=now, history=[("OrderPlaced", f"{len(items)} line(s)")])
    return _finish(_enter(saga, START, fx), fx)


def advance(saga: Saga, event: Event, now: datetime) -> Transition:
    """Apply one event; an event the current step does not take changes nothing."""
    row = TABLE[saga.step].handlers.get(type(event))
    if row is None or saga.status in ENDED:
        return Transition(saga=saga, applied=False)
    if row.reply and cast(Reply, event).operation_id not in saga.waiting:
        return Transition(saga=saga, applied=False)  # stale, duplicated, or for another step
    fx = Effects(now=now)
    moved, to = row.handler(saga, event, fx)
    if to not in row.to:
        name = type(event).__name__
        raise AssertionError(f"{saga.step} --{name}--> {to} is not in the table")
    if to != saga.step:
        moved = _enter(moved, to, fx)
    elif fx.resend:
        fx.messages.extend(_unanswered(moved))
    return _finish(moved, fx)


def _unanswered(saga: Saga) -> list[Message]:
    """The commands of the current step that still wait for a reply, to send again."""
    sends = TABLE[saga.step].sends
    if sends is None:
        return []
    return [c for c in sends.build(saga) if c.operation_id in saga.waiting]


def _enter(saga: Saga, step: StepName, fx: Effects) -> Saga:
    """Move to `step`, sending its commands and waiting for their replies."""
    sends = TABLE[step].sends
    commands = [] if sends is None else list(sends.build(saga))
    fx.messages.extend(commands)
    return replace(saga, step=step, waiting=tuple(c.operation_id for c in commands))


def _finish(saga: Saga, fx: Effects) -> Transition:
    return Transition(
        saga=saga, messages=tuple(fx.messages), history=tuple(fx.history), parked=fx.parked
    )
