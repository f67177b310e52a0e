"""Identity and wallet routes."""

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from sqlalchemy.ext.asyncio import AsyncSession

from shopkit.app import ClockDep, Db
from shopkit.auth import CurrentPrincipal
from shopkit.errors import VALIDATION_CODES
from shopkit.idempotency import run_idempotent
from shopkit.pagination import Cursor, Limit, Page
from wallet import service
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

VALIDATION_CODES["amount"] = "INVALID_AMOUNT"

router = APIRouter(prefix="/api", tags=["wallet"])


async def get_passwords(request: Request) -> Passwords:
    return request.app.state.passwords


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


PasswordsDep = Annotated[Passwords, Depends(get_passwords)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]


@router.post("/users", status_code=201, response_model=UserOut)
async def register(body: RegisterIn, db: Db, passwords: PasswordsDep, clock: ClockDep) -> UserOut:
    """Sign up; 409 EMAIL_TAKEN when the email is already registered."""
    user = await service.register_user(
        db,
        passwords=passwords,
        name=body.name,
        email=body.email,
        password=body.password,
        now=clock(),
    )
    return UserOut(id=user.id, name=user.name, email=user.email)


@router.post("/auth/login", response_model=TokenOut)
async def login(body: LoginIn, db: Db, passwords: PasswordsDep, settings: SettingsDep) -> TokenOut:
    """Exchange email and password for a bearer token; 401 INVALID_CREDENTIALS otherwise."""
    user = await service.authenticate(
        db, passwords=passwords, email=body.email, password=body.password
    )
    token = issue_token(settings, user_id=user.id, role="admin" if user.role == "admin" else "user")
    return TokenOut(access_token=token, expires_in=settings.jwt_ttl_seconds)


@router.get("/users/{user_id}/balance", response_model=BalanceOut)
async def balance(user_id: str, db: Db, principal: CurrentPrincipal) -> BalanceOut:
    """The user's current balance in KRW."""
    principal.require_self_or_admin(user_id)
    found = await service.get_balance(db, user_id=user_id)
    return BalanceOut(user_id=found.user_id, balance=found.balance)


@router.post("/users/{user_id}/balance/charge", response_model=ChargeOut)
async def charge(
    user_id: str,
    body: ChargeIn,
    db: Db,
    principal: CurrentPrincipal,
    clock: ClockDep,
    idempotency_key: IdempotencyKey = None,
) -> object:
    """Add 1..10,000,000 KRW to the balance; replays the first answer for a repeated key."""
    principal.require_self_or_admin(user_id)

    async def work(session: AsyncSession) -> ChargeOut:
        done = await service.charge(session, user_id=user_id, amount=body.amount, now=clock())
        return ChargeOut(
            user_id=user_id, balance=done.balance, transaction_id=done.transaction_id or ""
        )

    return await run_idempotent(
        db, scope=f"charge:{user_id}", key=idempotency_key, request=body, status_code=200, work=work
    )


@router.get("/users/{user_id}/balance/transactions", response_model=Page[TransactionOut])
async def transactions(
    user_id: str, db: Db, principal: CurrentPrincipal, limit: Limit = 20, cursor: Cursor = None
) -> Page[TransactionOut]:
    """The user's ledger, newest first; the balance is the sum of these amounts."""
    principal.require_self_or_admin(user_id)
    rows, next_cursor = await service.list_transactions(
        db, user_id=user_id, limit=limit, cursor=cursor
    )
    items = [TransactionOut.model_validate(r, from_attributes=True) for r in rows]
    return Page[TransactionOut](items=items, next_cursor=next_cursor)
