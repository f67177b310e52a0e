"""Idempotency-Key for HTTP writes: the same key and body replays the first response.

A key is claimed in its own short transaction; the work and the stored response then commit
together, so a crash can never leave work done without its response (or the reverse).
A claim left IN_PROGRESS by a crashed process is taken over after `stale_after` seconds.
"""

import hashlib
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from typing import Any, TypeVar

import asyncpg
import orjson
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import Column, DateTime, Integer, String, Table, delete, func, select, update
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession

from shopkit.db import Database, driver, json_text, kit_metadata
from shopkit.errors import PROBLEM, Problem, problem_body

STALE_AFTER = timedelta(seconds=60)


idempotency_table = Table(
    "idempotency_keys",
    kit_metadata,
    Column("scope", String(200), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("status", String(20), nullable=False),  # IN_PROGRESS | DONE
    Column("response_status", Integer),
    Column("response_body", JSONB),
    Column("claimed_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
)
T = idempotency_table.c


def request_hash(body: BaseModel | dict[str, Any]) -> str:
    data = body.model_dump(mode="json") if isinstance(body, BaseModel) else body
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()


async def _claim(db: Database, scope: str, key: str, digest: str) -> JSONResponse | None:
    async with db.transaction() as session:
        inserted = await session.execute(
            insert(idempotency_table)
            .values(scope=scope, key=key, request_hash=digest, status="IN_PROGRESS")
            .on_conflict_do_nothing()
            .returning(T.key)
        )
        if inserted.scalar_one_or_none() is not None:
            return None
        record = (
            await session.execute(
                select(idempotency_table).where(T.scope == scope, T.key == key).with_for_update()
            )
        ).one()
        if record.request_hash != digest:
            raise Problem(422, "IDEMPOTENCY_KEY_REUSED", "this key was used with another body")
        if record.status == "DONE":
            status = record.response_status or 200
            media = PROBLEM if status >= 400 else "application/json"
            return JSONResponse(record.response_body, status_code=status, media_type=media)
        now = (await session.execute(select(func.now()))).scalar_one()
        if now - record.claimed_at < STALE_AFTER:
            raise Problem(409, "IDEMPOTENCY_IN_PROGRESS", "a request with this key is running")
        await session.execute(
            update(idempotency_table)
            .where(T.scope == scope, T.key == key)
            .values(claimed_at=func.now())
        )
        return None


async def _complete(
    tx: AsyncSession | asyncpg.Connection, scope: str, key: str, status: int, body: Any
) -> None:
    conn = tx if isinstance(tx, asyncpg.Connection) else await driver(tx)
    await conn.execute(
        "UPDATE idempotency_keys SET status = 'DONE', response_status = $3, response_body = $4"
        " WHERE scope = $1 AND key = $2",
        scope,
        key,
        status,
        json_text(body),
    )


Tx = TypeVar("Tx", AsyncSession, asyncpg.Connection)


async def run_idempotent(
    db: Database,
    *,
    scope: str,
    key: str | None,
    request: BaseModel | dict[str, Any],
    status_code: int,
    work: Callable[[Tx], Awaitable[BaseModel]],
    transaction: Callable[[], AbstractAsyncContextManager[Tx]] | None = None,
) -> JSONResponse:
    """Run `work` in one transaction; with a key, at most once per (scope, key).

    `transaction` opens it: `db.transaction` (a session) unless given, e.g. `db.raw_transaction`
    for work that is plain asyncpg statements."""
    begin: Callable[[], AbstractAsyncContextManager[Any]] = transaction or db.transaction
    if key is None:
        async with begin() as tx:
            result = await work(tx)
        return JSONResponse(result.model_dump(mode="json"), status_code=status_code)
    if not 1 <= len(key) <= 200:
        raise Problem(422, "INVALID_IDEMPOTENCY_KEY", "Idempotency-Key must be 1..200 characters")
    replay = await _claim(db, scope, key, request_hash(request))
    if replay is not None:
        return replay
    try:
        async with begin() as tx:
            result = await work(tx)
            body = result.model_dump(mode="json")
            await _complete(tx, scope, key, status_code, body)
        return JSONResponse(body, status_code=status_code)
    except Problem as problem:
        # A refusal is an answer too: the same request must get the same refusal again.
        answer = problem_body(problem.status, problem.code, problem.title, problem.detail)
        async with db.transaction() as session:
            await _complete(session, scope, key, problem.status, answer)
        raise
    except BaseException:
        async with db.transaction() as session:
            await session.execute(delete(idempotency_table).where(T.scope == scope, T.key == key))
        raise
