"""Pruning the tables that would otherwise only grow: the inbox and the idempotency keys.

Inbox rows older than `inbox_retention_days` go, except those of messages that are still
dead letters (DEAD or being redriven): the inbox is what keeps a redelivery from being applied
twice, so its window must outlast every way a message can come again. Why 14 days is enough,
against Kafka's retention and the consumer groups' offsets retention: docs/operations.md.
Idempotency keys older than `idempotency_retention_hours` go: a client retries a request within
minutes, not days.

Deleted in small batches (one short transaction each) so the job never holds many row locks
or a long transaction; each service's job runs every `retention_interval_seconds`.
"""

import asyncio
import logging
from datetime import datetime, timedelta

from fastapi import FastAPI

from shopkit.db import Database
from shopkit.settings import ServiceSettings

log = logging.getLogger("shopkit.retention")

# A row still needed: a dead letter not yet handled keeps its inbox row (`dead-lettered` or
# `redriving`), so the message is neither applied by a stray redelivery nor lost.
_PRUNABLE_INBOX = (
    "processed_at < $1 AND outcome <> 'redriving' AND NOT (outcome = 'dead-lettered' AND EXISTS"
    " (SELECT 1 FROM dead_letters d WHERE d.consumer = inbox.consumer"
    " AND d.message_id = inbox.message_id AND d.status <> 'REDRIVEN'))"
)
# The conditions are checked again on the row being deleted: a row changed meanwhile (a
# redrive marks it) has a new ctid and is left alone.
_PRUNE_INBOX = (
    "DELETE FROM inbox WHERE ctid = ANY(ARRAY("
    f"SELECT ctid FROM inbox WHERE {_PRUNABLE_INBOX} LIMIT $2)) AND {_PRUNABLE_INBOX}"
)
_PRUNE_IDEMPOTENCY_KEYS = (
    "DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY("
    "SELECT ctid FROM idempotency_keys WHERE claimed_at < $1 LIMIT $2)) AND claimed_at < $1"
)


async def prune(
    db: Database, *, now: datetime, settings: ServiceSettings, max_batches: int = 1000
) -> dict[str, int]:
    """Delete inbox rows and idempotency keys past their retention; how many of each."""
    deleted = {"inbox": 0, "idempotency_keys": 0}
    windows = {
        "inbox": (_PRUNE_INBOX, timedelta(days=settings.inbox_retention_days)),
        "idempotency_keys": (
            _PRUNE_IDEMPOTENCY_KEYS,
            timedelta(hours=settings.idempotency_retention_hours),
        ),
    }
    for table, (statement, window) in windows.items():
        for _ in range(max_batches):
            async with db.autocommit() as conn:
                status = await conn.execute(statement, now - window, settings.retention_batch_size)
            count = int(status.split()[-1])
            deleted[table] += count
            if count < settings.retention_batch_size:
                break
            await asyncio.sleep(0)  # let the service's own work in between batches
    return deleted


async def prune_old_rows(app: FastAPI) -> None:
    """Background job of every service: prune now and then, never failing the service."""
    settings: ServiceSettings = app.state.settings
    while True:
        await asyncio.sleep(settings.retention_interval_seconds)
        try:
            deleted = await prune(app.state.db, now=app.state.clock(), settings=settings)
            if any(deleted.values()):
                log.info("pruned old rows", extra={"fields": deleted})
        except Exception as exc:  # the database may be away; the next round tries again
            log.warning("pruning failed", extra={"fields": {"error": repr(exc)}})
