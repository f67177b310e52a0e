"""Payment provider routes: charge, cancel, look up, and the admin behavior knobs.

The provider is another company: its payment routes are a merchant API for the shop's merchant
key (X-Merchant-Key), never a shopper's token. The shop's admin may look payments up and set
the behavior knobs."""

import asyncio
import contextlib
import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.security import APIKeyHeader

from payment_mock import service
from payment_mock.domain import Random
from payment_mock.models import Payment, ProviderBehavior
from payment_mock.schemas import BehaviorIn, BehaviorOut, PaymentIn, PaymentOut
from payment_mock.settings import Settings
from shopkit.app import ClockDep, Db, from_state
from shopkit.auth import AdminPrincipal, Credentials, admin_bearer, bearer, principal_of
from shopkit.errors import VALIDATION_CODES, Problem
from shopkit.openapi import define, problems
from shopkit.pagination import Cursor, Limit, Page

for _field in ("decline_rate", "timeout_rate", "latency_ms"):
    VALIDATION_CODES[_field] = "INVALID_BEHAVIOR"

router = APIRouter(prefix="/api", tags=["payments"])
define(
    "payment-mock",
    (
        401,
        "INVALID_MERCHANT_KEY",
        "The X-Merchant-Key sent is not the shop's.",
        "the merchant key is wrong",
    ),
    (404, "PAYMENT_NOT_FOUND", "No payment with this id.", "no payment 7c9e6679"),
    (
        409,
        "PAYMENT_NOT_CANCELLABLE",
        "A DECLINED payment cannot be cancelled.",
        "payment 7c9e6679 is DECLINED",
    ),
    (
        422,
        "IDEMPOTENCY_KEY_REQUIRED",
        "A charge needs an Idempotency-Key header.",
        "send an Idempotency-Key header",
    ),
    (
        422,
        "INVALID_BEHAVIOR",
        "Rates are 0..1 and latency_ms is bounded.",
        "body.decline_rate: Input should be less than or equal to 1",
    ),
)
_MERCHANT_ONLY = ("FORBIDDEN",)  # a shop token, even an admin's, is refused


# The merchant API's credential: the key the provider gave the shop, sent in its own header.
merchant_key_header = APIKeyHeader(
    name="X-Merchant-Key",
    scheme_name="MerchantKey",
    auto_error=False,
    description="The shop's merchant credential",
)
SentMerchantKey = Annotated[str | None, Depends(merchant_key_header)]


def _is_merchant(request: Request, sent: str | None) -> bool:
    """Whether the shop's merchant key was sent; 401 INVALID_MERCHANT_KEY for a wrong one."""
    if sent is None:
        return False
    expected: bytes = request.app.state.merchant_key
    if not hmac.compare_digest(sent.encode("latin-1"), expected):  # constant time
        raise Problem(401, "INVALID_MERCHANT_KEY", "the merchant key is wrong")
    return True


async def merchant_only(request: Request, sent: SentMerchantKey) -> None:
    """Charges and cancels: the merchant key only. A shop token, even an admin's, gets 403."""
    if _is_merchant(request, sent):
        return
    credentials = await bearer(request)
    if credentials is None:
        raise Problem(401, "UNAUTHORIZED", "send the merchant key in X-Merchant-Key")
    principal_of(request, credentials)  # a bad token is still a 401
    raise Problem(403, "FORBIDDEN", "merchant API: only the merchant key may do this")


async def merchant_or_admin(
    request: Request,
    sent: SentMerchantKey,
    credentials: Annotated[Credentials, Depends(admin_bearer)],
) -> None:
    """Look-ups: the merchant key, or the shop's admin (support); a shopper gets 403."""
    if not _is_merchant(request, sent):
        principal_of(request, credentials).require_admin()


Merchant = Annotated[None, Depends(merchant_only)]
MerchantOrAdmin = Annotated[None, Depends(merchant_or_admin)]
SettingsDep = Annotated[Settings, Depends(from_state("settings"))]
RandomDep = Annotated[Random, Depends(from_state("random"))]
PaymentsDep = Annotated[service.Payments, Depends(from_state("payments"))]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]


@router.put(
    "/payments/behavior", response_model=BehaviorOut, responses=problems("INVALID_BEHAVIOR")
)
async def put_behavior(body: BehaviorIn, db: Db, _: AdminPrincipal, clock: ClockDep) -> BehaviorOut:
    """Admin: set decline rate, timeout rate and latency for every payment from now on."""
    behavior = await service.set_behavior(
        db,
        decline_rate=body.decline_rate,
        timeout_rate=body.timeout_rate,
        latency_ms=body.latency_ms,
        now=clock(),
    )
    return _behavior_out(behavior)


@router.get("/payments/behavior", response_model=BehaviorOut)
async def get_behavior(db: Db, _: AdminPrincipal) -> BehaviorOut:
    """Admin: the provider's current behavior."""
    return _behavior_out(await service.get_behavior(db))


@router.post(
    "/payments",
    status_code=201,
    response_model=PaymentOut,
    responses={
        200: {"model": PaymentOut, "description": "a repeated Idempotency-Key: the same payment"},
        **problems(
            *_MERCHANT_ONLY,
            "INVALID_AMOUNT",
            "IDEMPOTENCY_KEY_REQUIRED",
            "INVALID_IDEMPOTENCY_KEY",
            "IDEMPOTENCY_KEY_REUSED",
        ),
    },
)
async def create_payment(
    body: PaymentIn,
    request: Request,
    response: Response,
    payments: PaymentsDep,
    _: Merchant,
    clock: ClockDep,
    settings: SettingsDep,
    random: RandomDep,
    idempotency_key: IdempotencyKey = None,
) -> PaymentOut:
    """Charge once per Idempotency-Key: 201 when recorded, 200 with the same payment on replay."""
    charge = await payments.create(
        key=_require_key(idempotency_key),
        order_id=body.order_id,
        amount=body.amount,
        random=random,
        hang_seconds=settings.timeout_hang_seconds,
        now=clock(),
    )
    await _sleep_unless_disconnected(request, charge.delay)
    response.status_code = 201 if charge.created else 200
    return _payment_out(charge.payment)


@router.get(
    "/payments",
    response_model=Page[PaymentOut],
    responses=problems("FORBIDDEN", "INVALID_CURSOR"),
)
async def list_payments(
    db: Db,
    _: MerchantOrAdmin,
    order_id: str | None = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> Page[PaymentOut]:
    """Payments, newest first; `order_id` finds what a timed-out charge left behind."""
    rows, next_cursor = await service.list_payments(
        db, order_id=order_id, limit=limit, cursor=cursor
    )
    return Page[PaymentOut](items=[_payment_out(r) for r in rows], next_cursor=next_cursor)


@router.get(
    "/payments/{payment_id}",
    response_model=PaymentOut,
    responses=problems("FORBIDDEN", "PAYMENT_NOT_FOUND"),
)
async def get_payment(payment_id: str, db: Db, _: MerchantOrAdmin) -> PaymentOut:
    """One payment; 404 PAYMENT_NOT_FOUND."""
    return _payment_out(await service.get_payment(db, payment_id=payment_id))


@router.post(
    "/payments/{payment_id}/cancel",
    response_model=PaymentOut,
    responses=problems(*_MERCHANT_ONLY, "PAYMENT_NOT_FOUND", "PAYMENT_NOT_CANCELLABLE"),
)
async def cancel_payment(payment_id: str, db: Db, _: Merchant, clock: ClockDep) -> PaymentOut:
    """Cancel an approved payment; again is a no-op; 409 PAYMENT_NOT_CANCELLABLE if declined."""
    payment = await service.cancel_payment(db, payment_id=payment_id, now=clock())
    return _payment_out(payment)


def _require_key(key: str | None) -> str:
    if key is None:
        raise Problem(422, "IDEMPOTENCY_KEY_REQUIRED", "send an Idempotency-Key header")
    if not 1 <= len(key) <= 200:
        raise Problem(422, "INVALID_IDEMPOTENCY_KEY", "Idempotency-Key must be 1..200 characters")
    return key


async def _sleep_unless_disconnected(request: Request, seconds: float) -> None:
    """Wait `seconds`, ending early if the client hangs up: nobody is left to answer."""
    if seconds <= 0:
        return

    async def hung_up() -> None:
        # The body has been read, so the next ASGI message is the disconnect.
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.create_task(hung_up())
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(watcher), timeout=seconds)
    finally:
        watcher.cancel()


def _payment_out(payment: Payment) -> PaymentOut:
    return PaymentOut(
        payment_id=payment.id,
        order_id=payment.order_id,
        amount=payment.amount,
        status=payment.status,
        created_at=payment.created_at,
        cancelled_at=payment.cancelled_at,
    )


def _behavior_out(behavior: ProviderBehavior) -> BehaviorOut:
    return BehaviorOut(
        decline_rate=behavior.decline_rate,
        timeout_rate=behavior.timeout_rate,
        latency_ms=behavior.latency_ms,
        updated_at=behavior.updated_at,
    )
