"""Idempotency-Key for HTTP writes: the same key and body replays the first response.

A key is claimed in its own short transaction; the work and the stored response then commit
together, so a crash can never leave work done without its response (or the reverse).
A claim left IN_PROGRESS by a crashed process is taken over after `stale_after` seconds.
"""

import hashlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import orjson
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import Column, DateTime, Integer, String, Table, func
from sqlalchemy.dialects.postgresql import JSONB

from shopkit.db import Database, Transaction, json_text, kit_metadata
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


def request_hash(body: BaseModel | dict[str, Any]) -> str:
    data = body.model_dump(mode="json") if isinstance(body, BaseModel) else body
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()


async def _claim(db: Database, scope: str, key: str, digest: str) -> JSONResponse | None:
    async with db.transaction() as tx:
        while not await tx.fetchval(_CLAIM, scope, key, digest):
            record = await tx.fetchrow(_CLAIMED, scope, key)
            if record is None:
                continue  # its claim failed and was let go meanwhile: ours to take
            if record["request_hash"] != digest:
                raise Problem(422, "IDEMPOTENCY_KEY_REUSED", "this key was used with another body")
            if record["status"] == "DONE":
                status = record["response_status"] or 200
                media = PROBLEM if status >= 400 else "application/json"
                return JSONResponse(record["response_body"], status_code=status, media_type=media)
            if record["age"] < STALE_AFTER:
                raise Problem(409, "IDEMPOTENCY_IN_PROGRESS", "a request with this key is running")
            await tx.execute(_TAKE_OVER, scope, key)
            break
        return None


_CLAIM = (
    "INSERT INTO idempotency_keys (scope, key, request_hash, status)"
    " VALUES ($1, $2, $3, 'IN_PROGRESS') ON CONFLICT DO NOTHING RETURNING true"
)
_CLAIMED = (
    "SELECT request_hash, status, response_status, response_body, now() - claimed_at AS age"
    " FROM idempotency_keys WHERE scope = $1 AND key = $2 FOR UPDATE"
)
_TAKE_OVER = "UPDATE idempotency_keys SET claimed_at = now() WHERE scope = $1 AND key = $2"


async def _complete(tx: Transaction, scope: str, key: str, status: int, body: Any) -> None:
    await tx.execute(
        "UPDATE idempotency_keys SET status = 'DONE', response_status = $3, response_body = $4"
        " WHERE scope = $1 AND key = $2",
        scope,
        key,
        status,
        json_text(body),
    )


async def run_idempotent(
    db: Database,
    *,
    scope: str,
    key: str | None,
    request: BaseModel | dict[str, Any],
    status_code: int,
    work: Callable[[Transaction], Awaitable[BaseModel]],
) -> JSONResponse:
    """Run `work` in one transaction; with a key, at most once per (scope, key)."""
    if key is None:
        async with db.transaction() as tx:
            result = await work(tx)
        return JSONResponse(result.model_dump(mode="json"), status_code=status_code)
    if not 1 <= len(key) <= 200:
        raise Problem(422, "INVALID_IDEMPOTENCY_KEY", "Idempotency-Key must be 1..200 characters")
    replay = await _claim(db, scope, key, request_hash(request))
    if replay is not None:
        return replay
    try:
        async with db.transaction() as tx:
            result = await work(tx)
            body = result.model_dump(mode="json")
            await _complete(tx, scope, key, status_code, body)
        return JSONResponse(body, status_code=status_code)
    except Problem as problem:
        # A refusal is an answer too: the same request must get the same refusal again.
        answer = problem_body(problem.status, problem.code, problem.title, problem.detail)
        async with db.transaction() as tx:
            await _complete(tx, scope, key, problem.status, answer)
        raise
    except BaseException:
        async with db.autocommit() as conn:
            await conn.execute(
                "DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2", scope, key
            )
        raise
