"""Operations API of every service (admin only): its dead letters, listed and redriven, and
its outbox backlog.

Mounted by `create_app` at `/ops/...`; the gateway serves it as `/api/ops/<service>/...`.
The operator's flow is in docs/operations.md; `python -m shopkit.dlq` is a CLI over it.
"""

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from shopkit import dead_letters
from shopkit.auth import AdminPrincipal
from shopkit.db import Database
from shopkit.errors import Problem
from shopkit.pagination import Cursor, Limit, Page, decode_cursor, encode_cursor
from shopkit.settings import ServiceSettings

router = APIRouter(prefix="/ops", tags=["operations"])

Status = Literal["DEAD", "REDRIVING", "REDRIVEN"]


class DeadLetterOut(BaseModel):
    """A message a consumer of this service could not handle, where it was and why."""

    id: uuid.UUID
    topic: str
    partition: int | None
    offset: int | None
    key: str | None
    type: str | None
    error: str
    attempts: int
    dead_at: datetime
    payload: Any


class DeadLetterDetail(DeadLetterOut):
    """A dead letter with its consumer, message id and redrive state."""

    consumer: str
    message_id: uuid.UUID | None
    status: Status
    redriven_at: datetime | None
    redriven_by: str | None


class OutboxOut(BaseModel):
    """Messages committed but not yet on Kafka, and how long the oldest has waited."""

    pending: int
    oldest_age_s: float | None


class Skipped(BaseModel):
    id: uuid.UUID
    code: str
    detail: str | None


class RedriveAllOut(BaseModel):
    """How many DEAD letters were sent back, and which could not be (with why)."""

    redriven: int
    skipped: list[Skipped]


def _problem(status: int, description: str, **details: str) -> dict[str, Any]:
    """An OpenAPI response of problem+json, one example per code (`CODE="detail"`)."""
    examples = {
        code: {
            "value": {
                "type": f"https://shop.local/problems/{code.lower().replace('_', '-')}",
                "title": code.replace("_", " ").capitalize(),
                "status": status,
                "code": code,
                "detail": detail,
            }
        }
        for code, detail in details.items()
    }
    return {
        "description": description,
        "content": {"application/problem+json": {"examples": examples}},
    }


_ADMIN_ONLY: dict[int | str, dict[str, Any]] = {
    401: _problem(401, "no or bad bearer token", UNAUTHORIZED="missing bearer token"),
    403: _problem(403, "not an admin", FORBIDDEN="admin only"),
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: _problem(404, "no such letter", DEAD_LETTER_NOT_FOUND="no dead letter with this id")
}


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def _letter(row: asyncpg.Record, model: type[DeadLetterOut] = DeadLetterOut) -> Any:
    return model.model_validate(dict(row))


def _letter_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError as exc:
        raise Problem(404, "DEAD_LETTER_NOT_FOUND", "no dead letter with this id") from exc


def _redrive_window(settings: ServiceSettings) -> timedelta:
    # A day less than the inbox keeps a message, so other consumer groups still remember it.
    return timedelta(days=max(settings.inbox_retention_days - 1, 0))


@router.get("/dead-letters", response_model=Page[DeadLetterOut], responses=_ADMIN_ONLY)
async def list_dead_letters(
    request: Request,
    _: AdminPrincipal,
    limit: Limit = 20,
    cursor: Cursor = None,
    status: Annotated[Status, Query(description="DEAD (the default) is the queue")] = "DEAD",
) -> Page[DeadLetterOut]:
    """Dead letters of this service, oldest first (the order they died in), with their error
    and original topic, partition and offset."""
    after = decode_cursor(cursor, size=2)
    try:
        position = (datetime.fromisoformat(after[0]), uuid.UUID(after[1])) if after else None
    except (TypeError, ValueError) as exc:
        raise Problem(422, "INVALID_CURSOR", "cursor is not valid") from exc
    async with _db(request).autocommit() as conn:
        rows = await dead_letters.list_letters(conn, status=status, after=position, limit=limit + 1)
    items = [_letter(row) for row in rows[:limit]]
    last = items[-1] if len(rows) > limit else None
    next_cursor = encode_cursor([last.dead_at.isoformat(), str(last.id)]) if last else None
    return Page(items=items, next_cursor=next_cursor)


@router.get(
    "/dead-letters/{letter_id}",
    response_model=DeadLetterDetail,
    responses={**_ADMIN_ONLY, **_NOT_FOUND},
)
async def show_dead_letter(letter_id: str, request: Request, _: AdminPrincipal) -> Any:
    """One dead letter, whatever its status, with who redrove it and when."""
    async with _db(request).autocommit() as conn:
        row = await dead_letters.get_letter(conn, _letter_id(letter_id))
    return _letter(row, DeadLetterDetail)


@router.post(
    "/dead-letters/redrive",
    status_code=202,
    response_model=RedriveAllOut,
    responses=_ADMIN_ONLY,
)
async def redrive_all_dead_letters(request: Request, principal: AdminPrincipal) -> RedriveAllOut:
    """Send every DEAD letter of this service back to its topic (see the single redrive);
    those that cannot be redriven are listed with their code and stay DEAD."""
    db, state = _db(request), request.app.state
    skipped: list[Skipped] = []
    redriven = 0
    # The ids of the letters DEAD now: one that dies again meanwhile is not sent a second time.
    for letter_id in await dead_letters.dead_ids(db, limit=100_000):
        try:
            await dead_letters.redrive(
                db,
                letter_id=letter_id,
                by=principal.user_id,
                now=state.clock(),
                window=_redrive_window(state.settings),
            )
            redriven += 1
        except Problem as problem:
            skipped.append(Skipped(id=letter_id, code=problem.code, detail=problem.detail))
    return RedriveAllOut(redriven=redriven, skipped=skipped)


@router.post(
    "/dead-letters/{letter_id}/redrive",
    status_code=202,
    response_model=DeadLetterDetail,
    responses={
        **_ADMIN_ONLY,
        **_NOT_FOUND,
        409: _problem(
            409,
            "not redriven: a second redrive does nothing",
            DEAD_LETTER_NOT_DEAD="this letter is REDRIVING: it was redriven already",
            DEAD_LETTER_NOT_REDRIVABLE="the record was not a message envelope at all",
            DEAD_LETTER_TOO_OLD="its message is older than 13 days: other consumers of the"
            " topic no longer remember it and would apply it again",
        ),
    },
)
async def redrive_dead_letter(letter_id: str, request: Request, principal: AdminPrincipal) -> Any:
    """Send the letter's message back to its original topic with its key and id: its consumer
    handles it again, once, and the letter leaves the list (REDRIVEN) when that succeeds, or is
    DEAD again (attempts added up) if it fails again. The redrive is logged with who did it."""
    state = request.app.state
    row = await dead_letters.redrive(
        _db(request),
        letter_id=_letter_id(letter_id),
        by=principal.user_id,
        now=state.clock(),
        window=_redrive_window(state.settings),
    )
    return _letter(row, DeadLetterDetail)


# The relay deletes what it has sent, so every row is pending; the oldest is the first by id.
_OUTBOX_BACKLOG = (
    "SELECT (SELECT count(*) FROM outbox),"
    " (SELECT extract(epoch FROM clock_timestamp() - created_at)::float8 FROM outbox"
    " ORDER BY id LIMIT 1)"
)


@router.get("/outbox", response_model=OutboxOut, responses=_ADMIN_ONLY)
async def outbox_backlog(request: Request, _: AdminPrincipal) -> OutboxOut:
    """This service's outbox backlog: unsent messages and the oldest one's age in seconds
    (null when the relay has sent everything)."""
    async with _db(request).autocommit() as conn:
        pending, oldest = await conn.fetchrow(_OUTBOX_BACKLOG)
    return OutboxOut(pending=pending, oldest_age_s=oldest)
