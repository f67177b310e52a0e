"""Idempotency-Key against real PostgreSQL: the same key and body replay the first answer, a
refusal included; another body is refused; a claim still running is refused, a stale one taken
over; work that fails lets the key go."""

import uuid
from collections.abc import AsyncIterator

import orjson
import pytest
from pydantic import BaseModel

from shopdev.testing import Infra, kit_database
from shopkit.db import Database, Transaction
from shopkit.errors import Problem
from shopkit.idempotency import request_hash, run_idempotent


class Note(BaseModel):
    id: uuid.UUID
    n: int


@pytest.fixture(scope="module")
async def db(infra: Infra) -> AsyncIterator[Database]:
    async with kit_database(infra, "idem", "CREATE TABLE notes (id uuid PRIMARY KEY)") as database:
        yield database


async def notes(db: Database) -> int:
    async with db.autocommit() as conn:
        return int(await conn.fetchval("SELECT count(*) FROM notes"))


async def write(tx: Transaction) -> Note:
    note = uuid.uuid4()
    await tx.execute("INSERT INTO notes VALUES ($1)", note)
    return Note(id=note, n=1)


async def test_the_same_key_and_body_replay_the_first_answer(db: Database) -> None:
    key, before = str(uuid.uuid4()), await notes(db)

    async def run(body: dict[str, int]) -> tuple[int, object]:
        answer = await run_idempotent(
            db, scope="t", key=key, request=body, status_code=201, work=write
        )
        return answer.status_code, orjson.loads(answer.body)

    first = await run({"n": 1})
    assert first[0] == 201
    assert await run({"n": 1}) == first
    assert await notes(db) == before + 1
    with pytest.raises(Problem) as reused:
        await run({"n": 2})
    assert (reused.value.status, reused.value.code) == (422, "IDEMPOTENCY_KEY_REUSED")


async def test_without_a_key_the_work_runs_each_time(db: Database) -> None:
    before = await notes(db)
    for _ in range(2):
        await run_idempotent(db, scope="t", key=None, request={}, status_code=201, work=write)
    assert await notes(db) == before + 2


async def test_a_refusal_is_replayed_and_failed_work_lets_the_key_go(db: Database) -> None:
    async def refuse(tx: Transaction) -> Note:
        await write(tx)
        raise Problem(409, "CONFLICT", "no")

    refused = str(uuid.uuid4())
    before = await notes(db)
    with pytest.raises(Problem):
        await run_idempotent(db, scope="t", key=refused, request={}, status_code=201, work=refuse)
    for work in (refuse, write):  # answered from the stored refusal, whatever the work
        answer = await run_idempotent(
            db, scope="t", key=refused, request={}, status_code=201, work=work
        )
        assert (answer.status_code, orjson.loads(answer.body)["code"]) == (409, "CONFLICT")
    assert await notes(db) == before  # the refused work rolled back, and ran no more

    async def crash(tx: Transaction) -> Note:
        raise RuntimeError("a bug")

    failed = str(uuid.uuid4())
    with pytest.raises(RuntimeError):
        await run_idempotent(db, scope="t", key=failed, request={}, status_code=201, work=crash)
    answer = await run_idempotent(
        db, scope="t", key=failed, request={}, status_code=201, work=write
    )
    assert answer.status_code == 201


async def test_a_running_claim_is_refused_and_a_stale_one_taken_over(db: Database) -> None:
    key = str(uuid.uuid4())
    async with db.autocommit() as conn:
        await conn.execute(
            "INSERT INTO idempotency_keys (scope, key, request_hash, status)"
            " VALUES ('t', $1, $2, 'IN_PROGRESS')",
            key,
            request_hash({}),
        )
    with pytest.raises(Problem) as running:
        await run_idempotent(db, scope="t", key=key, request={}, status_code=201, work=write)
    assert (running.value.status, running.value.code) == (409, "IDEMPOTENCY_IN_PROGRESS")
    async with db.autocommit() as conn:
        await conn.execute(
            "UPDATE idempotency_keys SET claimed_at = now() - interval '2 minutes' WHERE key = $1",
            key,
        )
    answer = await run_idempotent(db, scope="t", key=key, request={}, status_code=201, work=write)
    assert answer.status_code == 201
