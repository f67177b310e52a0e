"""PostgreSQL LISTEN for a process: one connection, payloads handed to callbacks, reconnecting."""

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

import asyncpg

from shopkit.db import asyncpg_dsn

log = logging.getLogger("shopkit.notifications")


async def listen(
    database_url: str,
    channels: Mapping[str, Callable[[str], None]],
    *,
    on_connect: Callable[[], None] = lambda: None,
) -> None:
    """Forever: call `channels[channel](payload)` for each NOTIFY. After a reconnect
    `on_connect` runs, as notifications sent while not listening are lost."""
    url = asyncpg_dsn(database_url)
    while True:
        try:
            conn = await asyncpg.connect(url)
            try:
                for channel, handle in channels.items():
                    await conn.add_listener(channel, _payload_to(handle))
                on_connect()
                while not conn.is_closed():
                    await asyncio.sleep(1.0)
            finally:
                await conn.close(timeout=2)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("listener failed; reconnecting")
            await asyncio.sleep(1.0)


def _payload_to(handle: Callable[[str], None]) -> Callable[..., None]:
    def on_notify(*args: Any) -> None:
        handle(args[3])  # (connection, pid, channel, payload)

    return on_notify
