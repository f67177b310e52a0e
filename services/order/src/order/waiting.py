"""Waking up: `?wait=true` requests and the payment worker learn of saga changes by LISTEN.

Every transaction that moves a saga NOTIFYs at commit; one listening connection per process
turns that into asyncio events. A slow poll backs it up, so a lost notification only costs time.
"""

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import asyncpg
from fastapi import FastAPI

from order import service
from order.models import Order
from shopkit.db import Database, asyncpg_dsn

log = logging.getLogger("order.waiting")


class Waiters:
    def __init__(self) -> None:
        self._events: dict[str, set[asyncio.Event]] = defaultdict(set)
        self.worker = asyncio.Event()

    def changed(self, order_id: str) -> None:
        for event in self._events.get(order_id, ()):
            event.set()

    async def wait(
        self, db: Database, order_id: str, *, until: Callable[[Order], bool], timeout: float
    ) -> tuple[Order, bool]:
        """The order once `until` holds (True), or as it is when `timeout` runs out (False)."""
        event = asyncio.Event()
        self._events[order_id].add(event)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while True:
                event.clear()
                row = await service.read_order(db, order_id=order_id)
                assert row is not None
                if until(row):
                    return row, True
                left = deadline - loop.time()
                if left <= 0:
                    return row, False
                try:
                    await asyncio.wait_for(event.wait(), timeout=min(left, 0.5))
                except TimeoutError:
                    pass
        finally:
            self._events[order_id].discard(event)
            if not self._events[order_id]:
                del self._events[order_id]


async def listen(app: FastAPI) -> None:
    """Background job: one LISTEN connection feeding the process's waiters."""
    waiters: Waiters = app.state.waiters
    url = asyncpg_dsn(app.state.settings.database_url)

    def on_changed(*args: Any) -> None:
        waiters.changed(args[3])

    def on_worker(*_: Any) -> None:
        waiters.worker.set()

    while True:
        try:
            conn = await asyncpg.connect(url)
            try:
                await conn.add_listener(service.CHANGED_CHANNEL, on_changed)
                await conn.add_listener(service.WORKER_CHANNEL, on_worker)
                waiters.worker.set()  # anything missed while not listening
                while not conn.is_closed():
                    await asyncio.sleep(1.0)
            finally:
                await conn.close(timeout=2)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("listener failed; reconnecting")
            await asyncio.sleep(1.0)
