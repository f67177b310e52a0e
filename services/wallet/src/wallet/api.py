"""Identity and wallet routes."""

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request

from shopkit.app import ClockDep, Db, from_state
from shopkit.auth import CurrentPrincipal
from shopkit.clock import Clock
from shopkit.db import Transaction
from shopkit.errors import Problem
from shopkit.idempotency import run_idempotent
from shopkit.limits import Limiter, client_address
from shopkit.openapi import define, problems
from shopkit.pagination import Cursor, Limit, Page
from wallet import balances, users
from wallet.passwords import Passwords
from wallet.schemas import (
    BalanceOut,
    ChargeIn,
    ChargeOut,
    LoginIn,
    RegisterIn,
    TokenOut,
    TransactionOut,
    UserOut,
)
from wallet.settings import Settings
from wallet.tokens import issue_token

define(
    "wallet",
    (409, "EMAIL_TAKEN", "A user with this email exists.", "a user with this email already exists"),
    (
        401,
        "INVALID_CREDENTIALS",
        "Email or password is wrong (failed logins count towards the abuse limits).",
        "email or password is wrong",
    ),
    (404, "USER_NOT_FOUND", "No user with this id; nothing was done.", "no user 8f14e45f"),
)

router = APIRouter(prefix="/api", tags=["wallet"])


def limiter(settings: Settings, clock: Clock) -> Limiter:
    """The wallet's abuse limits, from its settings."""
    return Limiter(
        {
            "login-account": settings.limit_login_failures_per_account,
            "login-address": settings.limit_login_failures_per_address,
            "register-address": settings.limit_registrations_per_address,
            "charge": settings.limit_charges_per_user,
        },
        enabled=settings.rate_limits,
        clock=clock,
    )


def address_of(request: Request) -> str:
    return client_address(request.headers, request.client.host if request.client else None)


PasswordsDep = Annotated[Passwords, Depends(from_state("passwords"))]
SettingsDep = Annotated[Settings, Depends(from_state("settings"))]
LimitsDep = Annotated[Limiter, Depends(from_state("limits"))]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]


@router.post("/users", status_code=201, response_model=UserOut, responses=problems("EMAIL_TAKEN"))
async def register(
    body: RegisterIn,
    request: Request,
    db: Db,
    passwords: PasswordsDep,
    limits: LimitsDep,
    clock: ClockDep,
) -> UserOut:
    """Sign up; 409 EMAIL_TAKEN; 429 RATE_LIMITED past the registrations per client address."""
    limits.take("register-address", address_of(request))
    user = await users.register_user(
        db,
        passwords=passwords,
        name=body.name,
        email=body.email,
        password=body.password,
        now=clock(),
    )
    return UserOut(id=user.id, name=user.name, email=user.email)


@router.post(
    "/auth/login",
    response_model=TokenOut,
    responses=problems("INVALID_CREDENTIALS", "SERVICE_UNAVAILABLE"),
)
async def login(
    body: LoginIn,
    request: Request,
    db: Db,
    passwords: PasswordsDep,
    limits: LimitsDep,
    settings: SettingsDep,
) -> TokenOut:
    """Exchange email and password for a bearer token; 401 INVALID_CREDENTIALS otherwise;
    429 RATE_LIMITED while the account or client address is locked after failed logins."""
    address = address_of(request)
    limits.check("login-account", body.email)
    limits.check("login-address", address)
    # Counted as a failure before the (slow) hash, so a concurrent burst on one account is
    # refused after the rule's count instead of all passing the check at once.
    limits.fail("login-account", body.email)
    try:
        user = await users.authenticate(
            db, passwords=passwords, email=body.email, password=body.password
        )
    except Problem as problem:
        if problem.code == "INVALID_CREDENTIALS":
            limits.fail("login-address", address)
        raise
    limits.forgive("login-account", body.email)
    token = issue_token(settings, user_id=user.id, role="admin" if user.role == "admin" else "user")
    return TokenOut(access_token=token, expires_in=settings.jwt_ttl_seconds)


@router.get(
    "/users/{user_id}/balance",
    response_model=BalanceOut,
    responses=problems("FORBIDDEN", "USER_NOT_FOUND"),
)
async def balance(user_id: str, db: Db, principal: CurrentPrincipal) -> BalanceOut:
    """The user's current balance in KRW."""
    principal.require_self_or_admin(user_id)
    found = await balances.get_balance(db, user_id=user_id)
    return BalanceOut(user_id=found.user_id, balance=found.balance)


@router.post(
    "/users/{user_id}/balance/charge",
    response_model=ChargeOut,
    responses=problems(
        "FORBIDDEN",
        "USER_NOT_FOUND",
        "IDEMPOTENCY_IN_PROGRESS",
        "INVALID_AMOUNT",
        "IDEMPOTENCY_KEY_REUSED",
        "INVALID_IDEMPOTENCY_KEY",
    ),
)
async def charge(
    user_id: str,
    body: ChargeIn,
    db: Db,
    principal: CurrentPrincipal,
    limits: LimitsDep,
    clock: ClockDep,
    idempotency_key: IdempotencyKey = None,
) -> object:
    """Add 1..10,000,000 KRW to the balance; replays the first answer for a repeated key."""
    principal.require_self_or_admin(user_id)
    limits.take("charge", user_id)

    async def work(tx: Transaction) -> ChargeOut:
        done = await balances.charge(tx, user_id=user_id, amount=body.amount, now=clock())
        return ChargeOut(
            user_id=user_id, balance=done.balance, transaction_id=done.transaction_id or ""
        )

    return await run_idempotent(
        db,
        scope=f"charge:{user_id}",
        key=idempotency_key,
        request=body,
        status_code=200,
        work=work,
    )


@router.get(
    "/users/{user_id}/balance/transactions",
    response_model=Page[TransactionOut],
    responses=problems("FORBIDDEN", "USER_NOT_FOUND", "INVALID_CURSOR"),
)
async def transactions(
    user_id: str, db: Db, principal: CurrentPrincipal, limit: Limit = 20, cursor: Cursor = None
) -> Page[TransactionOut]:
    """The user's ledger, newest first; the balance is the sum of these amounts."""
    principal.require_self_or_admin(user_id)
    rows, next_cursor = await balances.list_transactions(
        db, user_id=user_id, limit=limit, cursor=cursor
    )
    items = [TransactionOut.model_validate(r, from_attributes=True) for r in rows]
    return Page[TransactionOut](items=items, next_cursor=next_cursor)
