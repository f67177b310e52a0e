"""Coupon routes: definitions (admin), the first-come-first-served issue, user coupons."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from coupon import service
from coupon.issue_queue import IssueQueue
from coupon.models import Coupon
from coupon.schemas import (
    CouponIn,
    CouponOut,
    IssueIn,
    StatusFilter,
    UserCouponOut,
    user_coupon_out,
)
from shopkit.app import ClockDep, Db, from_state
from shopkit.auth import AdminPrincipal, CurrentPrincipal
from shopkit.openapi import define, problems
from shopkit.pagination import Cursor, Limit, Page

router = APIRouter(prefix="/api", tags=["coupons"])
define(
    "coupon",
    (
        422,
        "INVALID_COUPON",
        "The coupon definition breaks a rule (e.g. PERCENT above 100).",
        "a PERCENT discount_value must be between 1 and 100",
    ),
    (404, "COUPON_NOT_FOUND", "No coupon with this id.", "no coupon 9b2e1c7d"),
    (404, "USER_NOT_FOUND", "No user with this id; nothing was done.", "no user 8f14e45f"),
    (404, "USER_COUPON_NOT_FOUND", "No user coupon with this id.", "no user coupon 1a2b3c4d"),
    (
        409,
        "COUPON_NOT_REVOCABLE",
        "Only an ISSUED coupon can be revoked.",
        "a USED coupon cannot be revoked",
    ),
    (
        409,
        "SOLD_OUT",
        "Every coupon has been taken; nothing was issued.",
        "every coupon has been taken",
    ),
    (
        409,
        "ALREADY_ISSUED",
        "This user already has (or is in line for) this coupon.",
        "this user already has or is in line for it",
    ),
)


IssueQueueDep = Annotated[IssueQueue, Depends(from_state("issue_queue"))]


@router.post(
    "/coupons", status_code=201, response_model=CouponOut, responses=problems("INVALID_COUPON")
)
async def create_coupon(body: CouponIn, db: Db, _: AdminPrincipal, clock: ClockDep) -> CouponOut:
    """Define a coupon (admin); PERCENT values are 1..100, valid_days defaults to 30."""
    coupon = await service.create_coupon(db, **body.model_dump(), now=clock())
    return coupon_out(coupon)


@router.get(
    "/coupons/{coupon_id}", response_model=CouponOut, responses=problems("COUPON_NOT_FOUND")
)
async def get_coupon(coupon_id: str, db: Db, _: CurrentPrincipal) -> CouponOut:
    """A coupon and how many have been issued; 404 COUPON_NOT_FOUND."""
    return coupon_out(await service.get_coupon(db, coupon_id=coupon_id))


@router.post(
    "/coupons/{coupon_id}/issue",
    status_code=202,
    response_model=UserCouponOut,
    responses={
        201: {"model": UserCouponOut, "description": "issued (with ?wait=true)"},
        202: {
            "model": UserCouponOut,
            "description": "PENDING: a place in line (also with ?wait=true after 10 s)",
        },
        **problems(
            "FORBIDDEN",
            "COUPON_NOT_FOUND",
            (404, "USER_NOT_FOUND"),
            "SOLD_OUT",
            "ALREADY_ISSUED",
        ),
    },
)
async def issue_coupon(
    coupon_id: str,
    body: IssueIn,
    principal: CurrentPrincipal,
    wait: Annotated[bool, Query(description="wait up to 10 s for ISSUED")] = False,
) -> UserCouponOut:
    """Take a place in line (202 PENDING); 409 SOLD_OUT or ALREADY_ISSUED; 404 unknown ids;
    429 RATE_LIMITED past the user's issue requests per minute."""
    # The contract for the OpenAPI document: coupon.issue_endpoint answers every such request
    # before routing, so this body never runs.
    raise NotImplementedError("answered by coupon.issue_endpoint")


@router.get(
    "/users/{user_id}/coupons",
    response_model=Page[UserCouponOut],
    responses=problems("FORBIDDEN", (404, "USER_NOT_FOUND"), "INVALID_CURSOR"),
)
async def list_user_coupons(
    user_id: str,
    db: Db,
    principal: CurrentPrincipal,
    queue: IssueQueueDep,
    clock: ClockDep,
    status: StatusFilter | None = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> Page[UserCouponOut]:
    """The user's coupons, newest first, optionally of one status."""
    principal.require_self_or_admin(user_id)
    now = clock()
    held, next_cursor = await service.list_user_coupons(
        db,
        queue=queue,
        user_id=user_id,
        status=status,
        limit=limit,
        cursor=cursor,
        now=now,
        require_known=principal.user_id != user_id,
    )
    return Page[UserCouponOut](
        items=[user_coupon_out(h, now) for h in held], next_cursor=next_cursor
    )


@router.get(
    "/user-coupons/{user_coupon_id}",
    response_model=UserCouponOut,
    responses=problems("FORBIDDEN", "USER_COUPON_NOT_FOUND"),
)
async def get_user_coupon(
    user_coupon_id: str, db: Db, principal: CurrentPrincipal, queue: IssueQueueDep, clock: ClockDep
) -> UserCouponOut:
    """One user coupon (its holder or an admin); 404 USER_COUPON_NOT_FOUND."""
    held = await service.get_user_coupon(db, queue=queue, user_coupon_id=user_coupon_id)
    principal.require_self_or_admin(held.row.user_id)
    return user_coupon_out(held, clock())


@router.post(
    "/user-coupons/{user_coupon_id}/revoke",
    response_model=UserCouponOut,
    responses=problems("USER_COUPON_NOT_FOUND", "COUPON_NOT_REVOCABLE"),
)
async def revoke_user_coupon(
    user_coupon_id: str, db: Db, _: AdminPrincipal, queue: IssueQueueDep, clock: ClockDep
) -> UserCouponOut:
    """Revoke an ISSUED coupon (admin); 409 COUPON_NOT_REVOCABLE when PENDING or USED."""
    held = await service.revoke(db, queue=queue, user_coupon_id=user_coupon_id)
    return user_coupon_out(held, clock())


def coupon_out(coupon: Coupon) -> CouponOut:
    return CouponOut.model_validate(coupon, from_attributes=True)
