"""What the place, cancel and modify flows share: refunds, re-sends and parking, line shapes."""

from dataclasses import replace

from contracts.catalog import CommitStock, ReservedLine, StockLine
from contracts.order import SoldLine
from contracts.wallet import RefundWallet, WalletRefunded
from order.domain import Line
from order.saga.events import DeadlinePassed, ProviderCancelFailed
from order.saga.state import Effects, Moved, Saga


def stock_lines(lines: tuple[Line, ...]) -> tuple[StockLine, ...]:
    return tuple(StockLine(product_id=x.product_id, quantity=x.quantity) for x in lines)


def sold_lines(lines: tuple[Line, ...]) -> tuple[SoldLine, ...]:
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


def priced_lines(lines: tuple[ReservedLine, ...]) -> tuple[Line, ...]:
    """A reservation's lines, with the prices, names and categories the catalog gave them."""
    return tuple(Line(x.product_id, x.quantity, x.unit_price, x.name, x.category) for x in lines)


def commit_stock(operation_id: str, saga: Saga, detail: str, fx: Effects) -> None:
    """Turn a reservation into sold units, without waiting for a reply.

    The units are already held for this order and a commit cannot fail, so nothing needs its
    answer: the outbox delivers the command, the catalog applies it once, and a later
    ReturnStock of the same order (same topic, same key) is applied after it."""
    fx.history.append(("StockCommitSent", detail))
    fx.messages.append(CommitStock(order_id=saga.order_id, operation_id=operation_id))


def refund_wallet(saga: Saga) -> list[RefundWallet]:
    """The refunds a refunding step asks for (placing's, cancel's or modify's)."""
    return [
        RefundWallet(
            order_id=saga.order_id,
            operation_id=r.operation_id,
            debit_operation_id=r.debit_operation_id,
            user_id=saga.user_id,
            amount=r.amount,
        )
        for r in saga.refunds
    ]


def record_refund(saga: Saga, e: WalletRefunded, fx: Effects) -> Saga:
    """Book a refund against its debit; once the last one is back the step's refunds are done."""
    refund = next(r for r in saga.refunds if r.operation_id == e.operation_id)
    debits = tuple(
        replace(d, refunded=d.refunded + e.amount)
        if d.operation_id == refund.debit_operation_id
        else d
        for d in saga.debits
    )
    waiting = tuple(op for op in saga.waiting if op != e.operation_id)
    fx.history.append(("WalletRefunded", f"{e.amount} given back"))
    return replace(saga, debits=debits, waiting=waiting, refunds=saga.refunds if waiting else ())


def retry(saga: Saga, e: DeadlinePassed, fx: Effects) -> Moved:
    """Re-send the step's commands, or park after `park_after` attempts (still waiting, so a
    late reply moves it on and an operator's retry re-sends)."""
    if e.park_after and e.attempt >= e.park_after:
        fx.history.append(("SagaParked", f"{saga.step}: no reply after {e.attempt} attempt(s)"))
        fx.parked = f"no reply to {saga.step} after {e.attempt} attempt(s)"
        return saga, saga.step
    fx.history.append(("CommandResent", f"{saga.step}: attempt {e.attempt + 1}"))
    fx.resend = True
    return saga, saga.step


def timed_out(saga: Saga, e: DeadlinePassed, fx: Effects) -> None:
    fx.history.append(("StepTimedOut", f"{saga.step}: no reply after {e.attempt} attempt(s)"))


def provider_cancel_failed(saga: Saga, e: ProviderCancelFailed, fx: Effects) -> Moved:
    """Park: the provider's payments could not be cancelled; an operator retries."""
    fx.history.append(("SagaParked", f"{saga.step}: {e.detail}"))
    fx.parked = f"{saga.step}: {e.detail}"
    return saga, saga.step
