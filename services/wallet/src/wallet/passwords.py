"""Password hashing with argon2id, a bounded amount of it at a time, off the event loop.

Each hash takes `memory_kib` of memory (19 MiB by default, OWASP's minimum for argon2id), so
hashes run on `concurrency` threads of their own and at most `queue` more wait for one: a flood
of registrations or logins costs at most concurrency x 19 MiB and is refused with 503 beyond
that, instead of growing the process (and starving the debit consumer that shares it).
"""

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from shopkit.errors import Problem

T = TypeVar("T")


class Passwords:
    def __init__(
        self, *, time_cost: int, memory_kib: int, concurrency: int = 2, queue: int = 16
    ) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=1)
        # Verifying against this when the email is unknown keeps login time the same either way.
        self._dummy = self._hasher.hash("not-a-real-password")
        self._threads = ThreadPoolExecutor(concurrency, thread_name_prefix="argon2")
        self._room = concurrency + queue
        self._busy = 0  # hashes running or waiting for a thread

    async def hash(self, password: str) -> str:
        return await self._run(functools.partial(self._hasher.hash, password))

    async def verify(self, password_hash: str | None, password: str) -> bool:
        def check() -> bool:
            try:
                return self._hasher.verify(password_hash or self._dummy, password)
            except (VerificationError, InvalidHashError):
                return False

        return await self._run(check) and password_hash is not None

    async def _run(self, work: Callable[[], T]) -> T:
        if self._busy >= self._room:
            raise Problem(
                503,
                "SERVICE_UNAVAILABLE",
                "too many password checks in progress; retry shortly",
                headers={"Retry-After": "1"},
            )
        self._busy += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._threads, work)
        finally:
            self._busy -= 1

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)
