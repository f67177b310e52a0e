"""The order saga, pure: `advance(saga, event, now) -> Transition(saga, messages, history)`.

`TABLE` lists every allowed (step, event, next step); `HANDLERS` holds one small function per
(step, event). A reply is applied only when the current step expects that event type and its
operation id is one the step is waiting for, so duplicates and stale replies change nothing.
Commands for a step are derived from the saga alone (`step_commands`), which is what lets the
deadline scanner re-send them with the same operation ids. A step that is not a forward step
of placing never gives up silently: after bounded attempts its transition is `parked` (the
order stays as it is, still waiting for its replies) for an operator to list and retry.
"""

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from contracts import Message
from contracts.catalog import (
    CommitStock,
    ReleaseStock,
    ReserveStock,
    ReturnStock,
    StockLine,
    StockReleased,
    StockReservationFailed,
    StockReserved,
    StockReturned,
)
from contracts.coupon import (
    CouponReleased,
    CouponReservationFailed,
    CouponReserved,
    ReleaseCoupon,
    ReserveCoupon,
)
from contracts.order import OrderCancelled, OrderFailed, OrderModified, OrderPaid, SoldLine
from contracts.wallet import (
    DebitWallet,
    RefundWallet,
    WalletDebited,
    WalletDebitFailed,
    WalletRefunded,
)
from order.domain import (
    CouponTerms,
    Debit,
    Line,
    ModifyPlan,
    Status,
    coupon_usable,
    discount,
    plan_modify,
    price_lines,
    split_refund,
    subtotal,
)

Step = Literal[
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
    "MODIFY_DEBITING",
    "MODIFY_REFUNDING",
    "MODIFY_COMMITTING",
    "MODIFY_RELEASING",
    # nothing in flight (status PAID, FAILED or CANCELLED)
    "DONE",
]

# Steps the payment worker drives over HTTP; every other waiting step has a reply deadline.
PROVIDER_STEPS: tuple[Step, ...] = ("PAYING", "VOIDING_PAYMENT", "CANCEL_PAYMENT")
# Forward steps of placing: when their deadline runs out for good, the order is compensated.
FORWARD_STEPS: tuple[Step, ...] = ("RESERVING_STOCK", "RESERVING_COUPON", "DEBITING")


# ---- internal events (replies from other services are the contract messages themselves)
@dataclass(frozen=True)
class CancelRequested:
    """The owner asked to cancel a PAID order."""


@dataclass(frozen=True)
class ModifyRequested:
    """The owner asked to replace a PAID order's lines."""

    items: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class PaymentApproved:
    """The provider approved the payment."""

    payment_id: str


@dataclass(frozen=True)
class PaymentDeclined:
    """The provider declined the payment."""

    payment_id: str


@dataclass(frozen=True)
class PaymentTimedOut:
    """No answer from the provider in time; any payment it recorded must be cancelled."""

    detail: str


@dataclass(frozen=True)
class PaymentsCancelled:
    """Every payment the provider holds for the order is cancelled (or there was none)."""

    payment_ids: tuple[str, ...]


@dataclass(frozen=True)
class DeadlinePassed:
    """The step's reply did not come in time; `attempt` commands were sent so far.

    A forward step of placing gives up after `max_attempts` and compensates; any other step
    (a compensation, or a cancel or modify of a PAID order) is parked after `park_after`
    attempts (0: never), for an operator to look at."""

    attempt: int
    max_attempts: int
    park_after: int = 0


@dataclass(frozen=True)
class ProviderCancelFailed:
    """Cancelling the order's payments at the provider kept failing; the step is parked."""

    detail: str


Event = Any  # a contract reply or one of the dataclasses above


@dataclass(frozen=True)
class Refund:
    operation_id: str
    debit_operation_id: str
    amount: int


@dataclass(frozen=True)
class Saga:
    """Everything the saga knows about one order."""

    order_id: str
    user_id: str
    lines: tuple[Line, ...]
    status: Status = "PENDING"
    step: Step = "RESERVING_STOCK"
    coupon_id: str | None = None
    coupon: CouponTerms | None = None
    subtotal: int = 0
    discount: int = 0
    total: int = 0
    debits: tuple[Debit, ...] = ()
    refunds: tuple[Refund, ...] = ()
    waiting: tuple[str, ...] = ()
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
    saga: Saga
    messages: tuple[Message, ...] = ()
    history: tuple[tuple[str, str], ...] = ()  # (event, detail)
    applied: bool = True
    # Why the saga stopped retrying its step: the order waits for an operator (or a late reply).
    parked: str | None = None


@dataclass
class _Out:
    now: datetime
    messages: list[Message] = field(default_factory=list)
    history: list[tuple[str, str]] = field(default_factory=list)
    parked: str | None = None


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
    out = _Out(now=now, history=[("OrderPlaced", f"{len(items)} line(s)")])
    return _finish(_enter(saga, "RESERVING_STOCK", out), out)


# ---- commands each waiting step sends (and re-sends on its deadline)
def step_commands(saga: Saga) -> list[Message]:
    """The commands of the current step that still wait for a reply."""
    oid, s = saga.order_id, saga.step
    cmds: list[Message] = []
    if s == "RESERVING_STOCK":
        cmds = [
            ReserveStock(
                order_id=oid, operation_id=saga.op("place:stock"), lines=_stock(saga.lines)
            )
        ]
    elif s == "RESERVING_COUPON":
        cmds = [
            ReserveCoupon(
                order_id=oid,
                operation_id=saga.op("place:coupon"),
                user_id=saga.user_id,
                user_coupon_id=saga.coupon_id or "",
                subtotal=saga.subtotal,
            )
        ]
    elif s == "DEBITING":
        cmds = [
            DebitWallet(
                order_id=oid,
                operation_id=saga.op("place:debit"),
                user_id=saga.user_id,
                amount=saga.total,
            )
        ]
    elif s == "RELEASING_STOCK":
        cmds = [ReleaseStock(order_id=oid, operation_id=saga.op("place:stock"))]
    elif s in ("RELEASING_COUPON", "CANCEL_RELEASING_COUPON"):
        name = "place:coupon-release" if s == "RELEASING_COUPON" else "cancel:coupon"
        cmds = [
            ReleaseCoupon(
                order_id=oid, operation_id=saga.op(name), user_coupon_id=saga.coupon_id or ""
            )
        ]
    elif s in ("REFUNDING", "CANCEL_REFUNDING", "MODIFY_REFUNDING"):
        cmds = [
            RefundWallet(
                order_id=oid,
                operation_id=r.operation_id,
                debit_operation_id=r.debit_operation_id,
                user_id=saga.user_id,
                amount=r.amount,
            )
            for r in saga.refunds
        ]
    elif s == "CANCEL_RETURNING_STOCK":
        cmds = [
            ReturnStock(
                order_id=oid, operation_id=saga.op("cancel:stock"), lines=_stock(saga.lines)
            )
        ]
    elif s == "MODIFY_RESERVING" and saga.modify:
        cmds = [
            ReserveStock(
                order_id=oid, operation_id=saga.modify_op("stock"), lines=_stock(saga.modify.more)
            )
        ]
    elif s == "MODIFY_DEBITING" and saga.modify:
        cmds = [
            DebitWallet(
                order_id=oid,
                operation_id=saga.modify_op("debit"),
                user_id=saga.user_id,
                amount=_modify_total(saga) - saga.total,
            )
        ]
    elif s == "MODIFY_COMMITTING" and saga.modify:
        cmds = [
            ReturnStock(
                order_id=oid, operation_id=saga.modify_op("return"), lines=_stock(saga.modify.fewer)
            )
        ]
    elif s == "MODIFY_RELEASING":
        cmds = [ReleaseStock(order_id=oid, operation_id=saga.modify_op("stock"))]
    return [c for c in cmds if c.operation_id in saga.waiting]  # type: ignore[attr-defined]


def _stock(lines: tuple[Line, ...]) -> tuple[StockLine, ...]:
    return tuple(StockLine(product_id=line.product_id, quantity=line.quantity) for line in lines)


def _sold(lines: tuple[Line, ...]) -> tuple[SoldLine, ...]:
    return tuple(
        SoldLine(
            product_id=x.product_id,
            name=x.name,
            category=x.category,
            quantity=x.quantity,
            unit_price=x.unit_price,
        )
        for x in lines
    )


def _modify_total(saga: Saga) -> int:
    assert saga.modify is not None
    sub = subtotal(saga.modify.lines)
    return sub - discount(saga.coupon, sub)


def _enter(saga: Saga, step: Step, out: _Out) -> Saga:
    """Move to `step`, waiting for the replies to the commands it sends."""
    saga = replace(saga, step=step, waiting=_step_operations(saga, step))
    out.messages.extend(step_commands(saga))
    return saga


def _step_operations(saga: Saga, s: Step) -> tuple[str, ...]:
    """The operations whose replies step `s` waits for (the saga's other fields as on entry)."""
    simple = {
        "RESERVING_STOCK": "place:stock",
        "RESERVING_COUPON": "place:coupon",
        "DEBITING": "place:debit",
        "RELEASING_STOCK": "place:stock",
        "RELEASING_COUPON": "place:coupon-release",
        "CANCEL_RETURNING_STOCK": "cancel:stock",
        "CANCEL_RELEASING_COUPON": "cancel:coupon",
    }
    if s in simple:
        return (saga.op(simple[s]),)
    if s in ("REFUNDING", "CANCEL_REFUNDING", "MODIFY_REFUNDING"):
        return tuple(r.operation_id for r in saga.refunds)
    if s in ("MODIFY_RESERVING", "MODIFY_RELEASING"):
        return (saga.modify_op("stock"),)
    if s == "MODIFY_DEBITING":
        return (saga.modify_op("debit"),)
    if s == "MODIFY_COMMITTING" and saga.modify and saga.modify.fewer:
        return (saga.modify_op("return"),)
    return ()


def _finish(saga: Saga, out: _Out) -> Transition:
    return Transition(
        saga=saga, messages=tuple(out.messages), history=tuple(out.history), parked=out.parked
    )


# ---- placing
def _stock_reserved(saga: Saga, e: StockReserved, now: datetime, out: _Out) -> Saga:
    lines = tuple(Line(x.product_id, x.quantity, x.unit_price, x.name, x.category) for x in e.lines)
    sub = subtotal(lines)
    saga = replace(saga, lines=lines, subtotal=sub, total=sub)
    out.history.append(("StockReserved", f"subtotal {sub}"))
    if saga.coupon_id:
        return _enter(saga, "RESERVING_COUPON", out)
    return _charge(saga, now, out)


def _charge(saga: Saga, now: datetime, out: _Out) -> Saga:
    """Debit the wallet, or when nothing is owed (a 100% coupon), the order is paid as it is:
    no wallet debit of 0 and no provider payment."""
    if saga.total > 0:
        return _enter(saga, "DEBITING", out)
    out.history.append(("PaymentSkipped", "total 0: nothing to charge"))
    return _paid(saga, None, now, out)


def _fail(saga: Saga, code: str, out: _Out, step: Step) -> Saga:
    """Start compensating from `step` (DONE when there is nothing to give back)."""
    saga = replace(saga, failure_code=saga.failure_code or code)
    if step == "DONE":
        return _failed(saga, out)
    if step == "REFUNDING":
        refund = Refund(saga.op("place:refund"), saga.op("place:debit"), saga.total)
        saga = replace(saga, refunds=(refund,))
    return _enter(saga, step, out)


def _failed(saga: Saga, out: _Out) -> Saga:
    out.history.append(("OrderFailed", saga.failure_code or ""))
    out.messages.append(
        OrderFailed(
            order_id=saga.order_id,
            user_id=saga.user_id,
            failure_code=saga.failure_code,
            failed_at=out.now,
        )
    )
    return replace(saga, status="FAILED", step="DONE", waiting=(), refunds=())


def _stock_failed(saga: Saga, e: StockReservationFailed, now: datetime, out: _Out) -> Saga:
    out.history.append(("StockReservationFailed", f"{e.reason}: {', '.join(e.product_ids)}"))
    return _fail(saga, e.reason, out, "DONE")


def _coupon_reserved(saga: Saga, e: CouponReserved, now: datetime, out: _Out) -> Saga:
    terms = CouponTerms(e.user_coupon_id, e.discount_type, e.discount_value, e.min_order_amount)
    saga = replace(saga, coupon=terms, discount=e.discount, total=saga.subtotal - e.discount)
    out.history.append(("CouponReserved", f"discount {e.discount}"))
    return _charge(saga, now, out)


def _coupon_failed(saga: Saga, e: CouponReservationFailed, now: datetime, out: _Out) -> Saga:
    out.history.append(("CouponReservationFailed", e.detail))
    return _fail(saga, "COUPON_NOT_USABLE", out, "RELEASING_STOCK")


def _debited(saga: Saga, e: WalletDebited, now: datetime, out: _Out) -> Saga:
    out.history.append(("WalletDebited", f"{e.amount} taken"))
    return replace(saga, debits=(Debit(e.operation_id, e.amount),), step="PAYING", waiting=())


def _debit_failed(saga: Saga, e: WalletDebitFailed, now: datetime, out: _Out) -> Saga:
    out.history.append(("WalletDebitFailed", e.reason))
    # An unknown user has no wallet to pay with: to a client that is a balance problem.
    return _fail(saga, "INSUFFICIENT_BALANCE", out, _release_from(saga))


def _release_from(saga: Saga) -> Step:
    return "RELEASING_COUPON" if saga.coupon_id else "RELEASING_STOCK"


def _approved(saga: Saga, e: PaymentApproved, now: datetime, out: _Out) -> Saga:
    """Paid: the reserved units become sold by a one-way CommitStock (see `_commit_stock`)."""
    out.history.append(("PaymentApproved", e.payment_id))
    return _paid(saga, e.payment_id, now, out)


def _paid(saga: Saga, payment_id: str | None, now: datetime, out: _Out) -> Saga:
    _commit_stock(saga.order_id, saga.op("place:stock"), "reserved units sold", out)
    saga = replace(saga, payment_id=payment_id, status="PAID", step="DONE", paid_at=now, waiting=())
    out.history.append(("OrderPaid", f"total {saga.total}"))
    out.messages.append(
        OrderPaid(
            order_id=saga.order_id,
            user_id=saga.user_id,
            lines=_sold(saga.lines),
            subtotal=saga.subtotal,
            discount=saga.discount,
            total=saga.total,
            paid_at=now,
        )
    )
    return saga


def _commit_stock(order_id: str, operation_id: str, detail: str, out: _Out) -> None:
    """Turn a reservation into sold units, without waiting for a reply.

    The units are already held for this order and a commit cannot fail, so nothing needs its
    answer: the outbox delivers the command, the catalog applies it once, and a later
    ReturnStock of the same order (same topic, same key) is applied after it."""
    out.history.append(("StockCommitSent", detail))
    out.messages.append(CommitStock(order_id=order_id, operation_id=operation_id))


def _declined(saga: Saga, e: PaymentDeclined, now: datetime, out: _Out) -> Saga:
    out.history.append(("PaymentDeclined", e.payment_id))
    return _fail(replace(saga, payment_id=e.payment_id), "PAYMENT_DECLINED", out, "REFUNDING")


def _timed_out(saga: Saga, e: PaymentTimedOut, now: datetime, out: _Out) -> Saga:
    out.history.append(("PaymentTimedOut", e.detail))
    return replace(saga, failure_code="PAYMENT_TIMEOUT", step="VOIDING_PAYMENT", waiting=())


def _voided(saga: Saga, e: PaymentsCancelled, now: datetime, out: _Out) -> Saga:
    out.history.append(("PaymentCancelled", ", ".join(e.payment_ids) or "no payment recorded"))
    return _fail(saga, "PAYMENT_TIMEOUT", out, "REFUNDING")


def _refunded(saga: Saga, e: WalletRefunded, now: datetime, out: _Out) -> Saga:
    refund = next(r for r in saga.refunds if r.operation_id == e.operation_id)
    debits = tuple(
        replace(d, refunded=d.refunded + e.amount)
        if d.operation_id == refund.debit_operation_id
        else d
        for d in saga.debits
    )
    waiting = tuple(op for op in saga.waiting if op != e.operation_id)
    out.history.append(("WalletRefunded", f"{e.amount} given back"))
    saga = replace(saga, debits=debits, waiting=waiting)
    if waiting:
        return saga
    saga = replace(saga, refunds=())
    if saga.step == "REFUNDING":
        return _enter(saga, _release_from(saga), out)
    if saga.step == "CANCEL_REFUNDING":
        return _enter(saga, "CANCEL_RETURNING_STOCK", out)
    return _modify_commit(saga, now, out)


def _coupon_released(saga: Saga, e: CouponReleased, now: datetime, out: _Out) -> Saga:
    out.history.append(("CouponReleased", e.user_coupon_id))
    if saga.step == "CANCEL_RELEASING_COUPON":
        return _cancelled(saga, now, out)
    return _enter(saga, "RELEASING_STOCK", out)


def _stock_released(saga: Saga, e: StockReleased, now: datetime, out: _Out) -> Saga:
    out.history.append(("StockReleased", "reservation given back"))
    if saga.step == "MODIFY_RELEASING":
        return _modify_failed(saga, saga.modify_outcome or "OUT_OF_STOCK", out)
    return _failed(saga, out)


def _deadline(saga: Saga, e: DeadlinePassed, now: datetime, out: _Out) -> Saga:
    """Re-send the step's commands; a forward step of placing gives up after max attempts."""
    if saga.step in FORWARD_STEPS and e.attempt >= e.max_attempts:
        out.history.append(("StepTimedOut", f"{saga.step}: no reply after {e.attempt} attempt(s)"))
        if saga.step == "RESERVING_STOCK":
            return _fail(saga, "OUT_OF_STOCK", out, "RELEASING_STOCK")
        if saga.step == "RESERVING_COUPON":
            return _fail(saga, "COUPON_NOT_USABLE", out, "RELEASING_COUPON")
        return _fail(saga, "PAYMENT_TIMEOUT", out, "REFUNDING")
    if saga.step == "MODIFY_RESERVING" and e.attempt >= e.max_attempts:
        out.history.append(("StepTimedOut", f"{saga.step}: no reply after {e.attempt} attempt(s)"))
        return _enter(replace(saga, modify_outcome="OUT_OF_STOCK"), "MODIFY_RELEASING", out)
    if e.park_after and e.attempt >= e.park_after:
        out.history.append(("SagaParked", f"{saga.step}: no reply after {e.attempt} attempt(s)"))
        out.parked = f"no reply to {saga.step} after {e.attempt} attempt(s)"
        return saga  # still waiting: a late reply moves it on, an operator's retry re-sends
    out.history.append(("CommandResent", f"{saga.step}: attempt {e.attempt + 1}"))
    out.messages.extend(step_commands(saga))
    return saga


def _cancel_failed(saga: Saga, e: ProviderCancelFailed, now: datetime, out: _Out) -> Saga:
    out.history.append(("SagaParked", f"{saga.step}: {e.detail}"))
    out.parked = f"{saga.step}: {e.detail}"
    return saga


# ---- cancel of a PAID order
def _cancel_requested(saga: Saga, e: CancelRequested, now: datetime, out: _Out) -> Saga:
    out.history.append(("CancelRequested", f"refund {sum(d.remaining for d in saga.debits)}"))
    saga = replace(saga, operation="CANCEL", step="CANCEL_PAYMENT", waiting=())
    if saga.payment_id is None:  # paid in full by a coupon: the provider holds nothing
        return _cancel_payment_done(saga, PaymentsCancelled(payment_ids=()), now, out)
    return saga


def _cancel_payment_done(saga: Saga, e: PaymentsCancelled, now: datetime, out: _Out) -> Saga:
    out.history.append(("PaymentCancelled", ", ".join(e.payment_ids) or "no payment recorded"))
    refunds = tuple(
        Refund(saga.op(f"cancel:refund:{i}"), d.operation_id, d.remaining)
        for i, d in enumerate(saga.debits)
        if d.remaining > 0
    )
    saga = replace(saga, refunds=refunds)
    return _enter(saga, "CANCEL_REFUNDING" if refunds else "CANCEL_RETURNING_STOCK", out)


def _stock_returned(saga: Saga, e: StockReturned, now: datetime, out: _Out) -> Saga:
    modifying = saga.step == "MODIFY_COMMITTING" and saga.modify is not None
    returned = saga.modify.fewer if modifying and saga.modify else saga.lines
    out.history.append(("StockReturned", f"{sum(x.quantity for x in returned)} unit(s)"))
    if modifying:
        return _modify_applied(saga, now, out)
    if saga.coupon_id:
        return _enter(saga, "CANCEL_RELEASING_COUPON", out)
    return _cancelled(saga, now, out)


def _cancelled(saga: Saga, now: datetime, out: _Out) -> Saga:
    out.history.append(("OrderCancelled", f"refunded {saga.total}"))
    out.messages.append(
        OrderCancelled(
            order_id=saga.order_id,
            user_id=saga.user_id,
            lines=_sold(saga.lines),
            total=saga.total,
            paid_at=saga.paid_at or now,
            cancelled_at=now,
        )
    )
    return replace(saga, status="CANCELLED", step="DONE", operation=None, waiting=())


# ---- modify of a PAID order
def _modify_requested(saga: Saga, e: ModifyRequested, now: datetime, out: _Out) -> Saga:
    plan = plan_modify(saga.lines, e.items)
    saga = replace(
        saga, operation="MODIFY", modify_seq=saga.modify_seq + 1, modify=plan, modify_outcome=None
    )
    out.history.append(("ModifyRequested", ", ".join(f"{p} x{q}" for p, q in e.items)))
    if plan.more:
        return _enter(saga, "MODIFY_RESERVING", out)
    return _modify_priced(saga, now, out)


def _modify_priced(saga: Saga, now: datetime, out: _Out) -> Saga:
    """The new lines have prices: check the coupon, then move the money."""
    assert saga.modify is not None
    new_sub = subtotal(saga.modify.lines)
    if not coupon_usable(saga.coupon, new_sub):
        saga = replace(saga, modify_outcome="COUPON_NOT_USABLE")
        assert saga.modify is not None
        if saga.modify.more:
            return _enter(saga, "MODIFY_RELEASING", out)
        return _modify_failed(saga, "COUPON_NOT_USABLE", out)
    delta = _modify_total(saga) - saga.total
    if delta > 0:
        return _enter(saga, "MODIFY_DEBITING", out)
    if delta < 0:
        parts = split_refund(saga.debits, -delta)
        refunds = tuple(
            Refund(saga.modify_op(f"refund:{i}"), d.operation_id, amount)
            for i, (d, amount) in enumerate(parts)
        )
        return _enter(replace(saga, refunds=refunds), "MODIFY_REFUNDING", out)
    return _modify_commit(saga, now, out)


def _modify_commit(saga: Saga, now: datetime, out: _Out) -> Saga:
    """The money moved: commit the extra units (one-way) and return the fewer ones."""
    assert saga.modify is not None
    if saga.modify.more:
        more = sum(x.quantity for x in saga.modify.more)
        _commit_stock(saga.order_id, saga.modify_op("stock"), f"{more} more unit(s) sold", out)
    saga = _enter(saga, "MODIFY_COMMITTING", out)
    return saga if saga.waiting else _modify_applied(saga, now, out)


def _modify_reserved(saga: Saga, e: StockReserved, now: datetime, out: _Out) -> Saga:
    assert saga.modify is not None
    priced = tuple(
        Line(x.product_id, x.quantity, x.unit_price, x.name, x.category) for x in e.lines
    )
    saga = replace(saga, modify=replace(saga.modify, lines=price_lines(saga.modify.lines, priced)))
    out.history.append(("StockReserved", f"{sum(x.quantity for x in priced)} more unit(s)"))
    return _modify_priced(saga, now, out)


def _modify_stock_failed(saga: Saga, e: StockReservationFailed, now: datetime, out: _Out) -> Saga:
    out.history.append(("StockReservationFailed", f"{e.reason}: {', '.join(e.product_ids)}"))
    return _modify_failed(saga, e.reason, out)


def _modify_debited(saga: Saga, e: WalletDebited, now: datetime, out: _Out) -> Saga:
    out.history.append(("WalletDebited", f"{e.amount} more taken"))
    saga = replace(saga, debits=(*saga.debits, Debit(e.operation_id, e.amount)))
    return _modify_commit(saga, now, out)


def _modify_debit_failed(saga: Saga, e: WalletDebitFailed, now: datetime, out: _Out) -> Saga:
    out.history.append(("WalletDebitFailed", e.reason))
    saga = replace(saga, modify_outcome="INSUFFICIENT_BALANCE")
    if saga.modify and saga.modify.more:
        return _enter(saga, "MODIFY_RELEASING", out)
    return _modify_failed(saga, "INSUFFICIENT_BALANCE", out)


def _modify_applied(saga: Saga, now: datetime, out: _Out) -> Saga:
    assert saga.modify is not None
    previous = saga.lines
    lines = tuple(x for x in saga.modify.lines if x.quantity > 0)
    sub = subtotal(lines)
    off = discount(saga.coupon, sub)
    saga = replace(
        saga,
        lines=lines,
        subtotal=sub,
        discount=off,
        total=sub - off,
        operation=None,
        step="DONE",
        waiting=(),
        modify=None,
        modify_outcome="APPLIED",
    )
    out.history.append(("OrderModified", f"total {saga.total}"))
    out.messages.append(
        OrderModified(
            order_id=saga.order_id,
            user_id=saga.user_id,
            previous_lines=_sold(previous),
            lines=_sold(lines),
            total=saga.total,
            paid_at=saga.paid_at or now,
            modified_at=now,
        )
    )
    return saga


def _modify_failed(saga: Saga, code: str, out: _Out) -> Saga:
    out.history.append(("ModifyFailed", code))
    return replace(
        saga, operation=None, step="DONE", waiting=(), refunds=(), modify=None, modify_outcome=code
    )


Handler = Callable[[Saga, Any, datetime, _Out], Saga]

# (step, event) -> (handler, the steps it may lead to). This is the saga's transition table.
HANDLERS: dict[tuple[Step, str], tuple[Handler, tuple[Step, ...]]] = {
    ("RESERVING_STOCK", "StockReserved"): (
        _stock_reserved,
        ("RESERVING_COUPON", "DEBITING", "DONE"),
    ),
    ("RESERVING_STOCK", "StockReservationFailed"): (_stock_failed, ("DONE",)),
    ("RESERVING_STOCK", "DeadlinePassed"): (_deadline, ("RESERVING_STOCK", "RELEASING_STOCK")),
    ("RESERVING_COUPON", "CouponReserved"): (_coupon_reserved, ("DEBITING", "DONE")),
    ("RESERVING_COUPON", "CouponReservationFailed"): (_coupon_failed, ("RELEASING_STOCK",)),
    ("RESERVING_COUPON", "DeadlinePassed"): (_deadline, ("RESERVING_COUPON", "RELEASING_COUPON")),
    ("DEBITING", "WalletDebited"): (_debited, ("PAYING",)),
    ("DEBITING", "WalletDebitFailed"): (_debit_failed, ("RELEASING_COUPON", "RELEASING_STOCK")),
    ("DEBITING", "DeadlinePassed"): (_deadline, ("DEBITING", "REFUNDING")),
    ("PAYING", "PaymentApproved"): (_approved, ("DONE",)),
    ("PAYING", "PaymentDeclined"): (_declined, ("REFUNDING",)),
    ("PAYING", "PaymentTimedOut"): (_timed_out, ("VOIDING_PAYMENT",)),
    ("VOIDING_PAYMENT", "PaymentsCancelled"): (_voided, ("REFUNDING",)),
    ("VOIDING_PAYMENT", "ProviderCancelFailed"): (_cancel_failed, ("VOIDING_PAYMENT",)),
    ("REFUNDING", "WalletRefunded"): (
        _refunded,
        ("REFUNDING", "RELEASING_COUPON", "RELEASING_STOCK"),
    ),
    ("REFUNDING", "DeadlinePassed"): (_deadline, ("REFUNDING",)),
    ("RELEASING_COUPON", "CouponReleased"): (_coupon_released, ("RELEASING_STOCK",)),
    ("RELEASING_COUPON", "DeadlinePassed"): (_deadline, ("RELEASING_COUPON",)),
    ("RELEASING_STOCK", "StockReleased"): (_stock_released, ("DONE",)),
    ("RELEASING_STOCK", "DeadlinePassed"): (_deadline, ("RELEASING_STOCK",)),
    # cancel
    ("DONE", "CancelRequested"): (
        _cancel_requested,
        ("CANCEL_PAYMENT", "CANCEL_REFUNDING", "CANCEL_RETURNING_STOCK"),
    ),
    ("CANCEL_PAYMENT", "PaymentsCancelled"): (
        _cancel_payment_done,
        ("CANCEL_REFUNDING", "CANCEL_RETURNING_STOCK"),
    ),
    ("CANCEL_PAYMENT", "ProviderCancelFailed"): (_cancel_failed, ("CANCEL_PAYMENT",)),
    ("CANCEL_REFUNDING", "WalletRefunded"): (
        _refunded,
        ("CANCEL_REFUNDING", "CANCEL_RETURNING_STOCK"),
    ),
    ("CANCEL_REFUNDING", "DeadlinePassed"): (_deadline, ("CANCEL_REFUNDING",)),
    ("CANCEL_RETURNING_STOCK", "StockReturned"): (
        _stock_returned,
        ("CANCEL_RELEASING_COUPON", "DONE"),
    ),
    ("CANCEL_RETURNING_STOCK", "DeadlinePassed"): (_deadline, ("CANCEL_RETURNING_STOCK",)),
    ("CANCEL_RELEASING_COUPON", "CouponReleased"): (_coupon_released, ("DONE",)),
    ("CANCEL_RELEASING_COUPON", "DeadlinePassed"): (_deadline, ("CANCEL_RELEASING_COUPON",)),
    # modify
    ("DONE", "ModifyRequested"): (
        _modify_requested,
        ("MODIFY_RESERVING", "MODIFY_DEBITING", "MODIFY_REFUNDING", "MODIFY_COMMITTING", "DONE"),
    ),
    ("MODIFY_RESERVING", "StockReserved"): (
        _modify_reserved,
        ("MODIFY_DEBITING", "MODIFY_REFUNDING", "MODIFY_COMMITTING", "MODIFY_RELEASING", "DONE"),
    ),
    ("MODIFY_RESERVING", "StockReservationFailed"): (_modify_stock_failed, ("DONE",)),
    ("MODIFY_RESERVING", "DeadlinePassed"): (_deadline, ("MODIFY_RESERVING", "MODIFY_RELEASING")),
    ("MODIFY_DEBITING", "WalletDebited"): (_modify_debited, ("MODIFY_COMMITTING", "DONE")),
    ("MODIFY_DEBITING", "WalletDebitFailed"): (_modify_debit_failed, ("MODIFY_RELEASING", "DONE")),
    ("MODIFY_DEBITING", "DeadlinePassed"): (_deadline, ("MODIFY_DEBITING",)),
    ("MODIFY_REFUNDING", "WalletRefunded"): (
        _refunded,
        ("MODIFY_REFUNDING", "MODIFY_COMMITTING", "DONE"),
    ),
    ("MODIFY_REFUNDING", "DeadlinePassed"): (_deadline, ("MODIFY_REFUNDING",)),
    ("MODIFY_COMMITTING", "StockReturned"): (_stock_returned, ("DONE",)),
    ("MODIFY_COMMITTING", "DeadlinePassed"): (_deadline, ("MODIFY_COMMITTING",)),
    ("MODIFY_RELEASING", "StockReleased"): (_stock_released, ("DONE",)),
    ("MODIFY_RELEASING", "DeadlinePassed"): (_deadline, ("MODIFY_RELEASING",)),
}

# The table as plain rows, for docs and the state diagram: (from step, event, to step).
TABLE: tuple[tuple[Step, str, Step], ...] = tuple(
    (step, event, to) for (step, event), (_, targets) in HANDLERS.items() for to in targets
)


def advance(saga: Saga, event: Event, now: datetime) -> Transition:
    """Apply one event; an event the current step does not expect changes nothing."""
    name = type(event).__name__
    entry = HANDLERS.get((saga.step, name))
    if entry is None:
        return Transition(saga=saga, applied=False)
    op = getattr(event, "operation_id", None)
    if op is not None and op not in saga.waiting:
        return Transition(saga=saga, applied=False)  # stale, duplicated, or for another step
    handler, targets = entry
    out = _Out(now=now)
    new = handler(saga, event, now, out)
    if new.step not in targets:
        raise AssertionError(f"{saga.step} --{name}--> {new.step} is not in the table")
    return _finish(new, out)


def mermaid_state_diagram() -> str:
    """`TABLE` as a mermaid stateDiagram-v2 (docs/generated/saga.md is rendered from it)."""
    lines = ["```mermaid", "stateDiagram-v2", "    [*] --> RESERVING_STOCK : OrderPlaced"]
    lines += [f"    {step} --> {to} : {event}" for step, event, to in TABLE]
    lines.append("```")
    return "\n".join(lines)
