"""The seeded load through the gateway: a steady rate of orders, cancels and modifies (and coupon
issue requests when the scenario has a drop), counted by what the shop answered.

Every choice comes from one `random.Random(seed)`, so a seed names a scenario (the shop's own
timing still varies from run to run).
"""

import asyncio
import bisect
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from chaos.set_up import Setup, Shopper

# A request that takes longer is counted as timed out; faults make some wait that long.
REQUEST_TIMEOUT_S = 10.0


@dataclass
class Traffic:
    """What the load sent and what it got back."""

    status: Counter[int] = field(default_factory=Counter)  # HTTP status -> count
    failures: list[tuple[float, int]] = field(default_factory=list)  # (monotonic, 5xx status)
    by_op: Counter[str] = field(default_factory=Counter)  # "place 202" -> count
    errors: Counter[str] = field(default_factory=Counter)  # transport errors by kind
    server_errors: list[str] = field(default_factory=list)  # examples of 5xx but 503
    skipped: int = 0  # ticks with every slot busy: the shop was not keeping up
    accepted: set[str] = field(default_factory=set)  # order ids answered 202
    # Orders placed, oldest first (times ascending), for cancels and modifies to pick from.
    placed: list[tuple[float, str, Shopper]] = field(default_factory=list)
    cancelled: set[str] = field(default_factory=set)


class Load:
    """Orders, cancels and modifies at a steady rate, some with coupons, until stopped; with
    `issue_share`, that share of the requests asks for the setup's drop coupon."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        setup: Setup,
        rng: random.Random,
        *,
        rate: float,
        issue_share: float = 0.0,
    ) -> None:
        self.client, self.setup, self.rng, self.rate = client, setup, rng, rate
        self.issue_share = issue_share if setup.drop else 0.0
        self.traffic = Traffic()
        self._slots = asyncio.Semaphore(48)
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        interval, due = 1.0 / self.rate, time.monotonic()
        while not self._stop.is_set():
            due += interval
            if self._slots.locked():
                self.traffic.skipped += 1
            else:
                await self._slots.acquire()
                task = asyncio.create_task(self._one())
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            delay = due - time.monotonic()
            if delay > 0:
                try:
                    await asyncio.wait_for(self._stop.wait(), delay)
                except TimeoutError:
                    pass

    async def drain(self, timeout: float) -> None:
        """Wait for the requests still in flight (each is bounded by its own timeout)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)

    async def _one(self) -> None:
        try:
            call = self._next()
            try:
                response = await self.client.request(
                    call.method,
                    call.path,
                    headers=call.shopper.headers | call.headers,
                    json=call.body,
                )
            except httpx.TimeoutException:
                self.traffic.errors[f"{call.op} timeout"] += 1
                return
            except httpx.TransportError as exc:
                self.traffic.errors[f"{call.op} {type(exc).__name__}"] += 1
                return
            code = response.status_code
            self.traffic.status[code] += 1
            self.traffic.by_op[f"{call.op} {code}"] += 1
            if code >= 500:
                self.traffic.failures.append((time.monotonic(), code))
            if code >= 500 and code != 503 and len(self.traffic.server_errors) < 20:
                self.traffic.server_errors.append(
                    f"{time.strftime('%H:%M:%S')} {call.method} {call.path} {code}"
                    f" {response.text[:200]}"
                )
            if call.op == "place" and code == 202:
                order_id = response.json()["id"]
                self.traffic.accepted.add(order_id)
                self.traffic.placed.append((time.monotonic(), order_id, call.shopper))
            if call.op == "issue" and code == 201:
                call.shopper.coupons.append(response.json()["id"])
        finally:
            self._slots.release()

    def _items(self) -> list[dict[str, Any]]:
        picked = self.rng.sample(list(self.setup.products), self.rng.randint(1, 3))
        return [{"product_id": p, "quantity": self.rng.randint(1, 3)} for p in picked]

    def _next(self) -> "Call":
        """The next request: mostly orders; cancels and modifies of orders placed a while ago."""
        if self.issue_share and self.rng.random() < self.issue_share:
            shopper = self.rng.choice(self.setup.shoppers)
            path = f"/api/coupons/{self.setup.drop}/issue?wait=true"
            return Call("issue", "POST", path, shopper, {"user_id": shopper.id})
        roll = self.rng.random()
        placed = self.traffic.placed
        older = bisect.bisect_left(placed, time.monotonic() - 2.0, key=lambda p: p[0])
        if roll < 0.30 and older:
            _, order_id, shopper = placed[self.rng.randrange(older)]
            # A cancelled order is not picked again: a second cancel is a plain 409.
            if roll < 0.15 and order_id not in self.traffic.cancelled:
                self.traffic.cancelled.add(order_id)
                return Call("cancel", "POST", f"/api/orders/{order_id}/cancel", shopper)
            if order_id not in self.traffic.cancelled:
                body = {"items": self._items()}
                return Call("modify", "PATCH", f"/api/orders/{order_id}", shopper, body)
        shopper = self.rng.choice(self.setup.shoppers)
        order: dict[str, Any] = {"user_id": shopper.id, "items": self._items()}
        if shopper.coupons and self.rng.random() < 0.15:
            order["coupon_id"] = self.rng.choice(shopper.coupons)
        key = {"Idempotency-Key": str(uuid.UUID(int=self.rng.getrandbits(128)))}
        return Call("place", "POST", "/api/orders", shopper, order, key)


@dataclass(frozen=True)
class Call:
    op: str
    method: str
    path: str
    shopper: Shopper
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
