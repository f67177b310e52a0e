"""The seeded scenario through the gateway: setup, a steady load of orders, cancels and modifies,
and the shopper's reads probed all along.

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

from chaos.stack import ADMIN_PASSWORD

CATEGORIES = ("ELECTRONICS", "FASHION", "FOOD", "BOOKS", "HOME", "SPORTS", "BEAUTY", "TOYS")
PASSWORD = "chaos-password"
# A request that takes longer is counted as timed out; faults make some wait that long.
REQUEST_TIMEOUT_S = 10.0


@dataclass
class Shopper:
    id: str
    headers: dict[str, str]
    coupons: list[str] = field(default_factory=list)  # user-coupon ids issued to them


@dataclass
class Setup:
    """What the scenario created, as the auditor needs it."""

    admin: dict[str, str]
    products: dict[str, int]  # product id -> price
    start_stock: dict[str, int]
    shoppers: list[Shopper]
    charged: dict[str, int]
    coupons: list[str]
    probe: Shopper
    probe_order: str
    probe_product: str
    drop: str | None = None  # a coupon left for the load to issue (first come, first served)


class Refused(RuntimeError):
    """A setup call the shop refused: the scenario cannot go on."""


def _ok(response: httpx.Response, *codes: int) -> Any:
    if response.status_code not in codes:
        raise Refused(
            f"{response.request.method} {response.request.url.path}: "
            f"{response.status_code} {response.text[:300]}"
        )
    return response.json()


async def _patiently(client: httpx.AsyncClient, path: str, body: dict[str, str]) -> httpx.Response:
    """POST as a well-behaved client: a 503 (the wallet's password hashing is full while dozens
    of shoppers sign up at once) is retried after its Retry-After, within a deadline."""
    deadline = time.monotonic() + 60
    while True:
        answer = await client.post(path, json=body)
        if answer.status_code != 503 or time.monotonic() > deadline:
            return answer
        await asyncio.sleep(float(answer.headers.get("Retry-After", "1")))


async def _shopper(client: httpx.AsyncClient, admin: dict[str, str], balance: int) -> Shopper:
    email = f"chaos-{uuid.uuid4().hex[:12]}@example.com"
    user = _ok(
        await _patiently(
            client, "/api/users", {"name": "Chaos", "email": email, "password": PASSWORD}
        ),
        201,
    )
    login = _ok(
        await _patiently(client, "/api/auth/login", {"email": email, "password": PASSWORD}), 200
    )
    shopper = Shopper(user["id"], {"Authorization": f"Bearer {login['access_token']}"})
    if balance:
        _ok(
            await client.post(
                f"/api/users/{shopper.id}/balance/charge", json={"amount": balance}, headers=admin
            ),
            200,
        )
    return shopper


async def set_up(
    client: httpx.AsyncClient, rng: random.Random, *, shoppers: int, drop: int = 0
) -> Setup:
    """Products with known stock, shoppers with charged balances, coupons issued to some, and
    with `drop` a coupon of that many for the load to issue."""
    login = _ok(
        await _patiently(
            client, "/api/auth/login", {"email": "admin@shop.local", "password": ADMIN_PASSWORD}
        ),
        200,
    )
    admin = {"Authorization": f"Bearer {login['access_token']}"}
    products: dict[str, int] = {}
    start_stock: dict[str, int] = {}
    for i in range(rng.randint(6, 9)):
        # Plenty of stock, but one product scarce: some orders fail OUT_OF_STOCK on purpose.
        price = rng.randrange(1_000, 20_000, 100)
        stock = rng.randint(150, 250) if i == 0 else rng.randint(3_000, 6_000)
        body = {
            "name": f"Chaos product {i}",
            "category": rng.choice(CATEGORIES),
            "price": price,
            "stock": stock,
            "description": "made by the chaos suite",
        }
        created = _ok(await client.post("/api/products", json=body, headers=admin), 201)
        products[created["id"]] = price
        start_stock[created["id"]] = stock
    # Most shoppers can pay for a whole run; a few run dry and see INSUFFICIENT_BALANCE.
    balances = [
        rng.randrange(100_000, 300_000, 1_000)
        if i % 8 == 0
        else rng.randrange(8_000_000, 10_000_000, 1_000)
        for i in range(shoppers)
    ]
    people = list(await asyncio.gather(*[_shopper(client, admin, balance) for balance in balances]))
    charged = {s.id: b for s, b in zip(people, balances, strict=True)}
    coupons = []
    for kind, value, total in (("FIXED", rng.choice((3_000, 5_000)), 12), ("PERCENT", 10, 8)):
        body = {
            "name": f"Chaos {kind} {value}",
            "discount_type": kind,
            "discount_value": value,
            "total_quantity": total,
            "min_order_amount": 10_000,
        }
        coupon = _ok(await client.post("/api/coupons", json=body, headers=admin), 201)
        coupons.append(coupon["id"])
        # More asks than coupons: some are SOLD_OUT, and issued must still stay <= total.
        for shopper in rng.sample(people, min(len(people), total + 4)):
            issued = await client.post(
                f"/api/coupons/{coupon['id']}/issue",
                params={"wait": "true"},
                json={"user_id": shopper.id},
                headers=shopper.headers,
            )
            if issued.status_code == 201:
                shopper.coupons.append(issued.json()["id"])
            elif issued.status_code != 409:
                raise Refused(f"issue: {issued.status_code} {issued.text[:300]}")
    drop_id = None
    if drop:
        # Fewer than the shoppers, so the load's issue requests also meet SOLD_OUT.
        body = {
            "name": "Chaos drop",
            "discount_type": "FIXED",
            "discount_value": 2_000,
            "total_quantity": drop,
            "min_order_amount": 10_000,
        }
        drop_id = _ok(await client.post("/api/coupons", json=body, headers=admin), 201)["id"]
    probe = await _shopper(client, admin, 1_000_000)
    charged[probe.id] = 1_000_000
    probe_product = min(products, key=products.__getitem__)
    placed = _ok(
        await client.post(
            "/api/orders",
            params={"wait": "true"},
            json={"user_id": probe.id, "items": [{"product_id": probe_product, "quantity": 1}]},
            headers=probe.headers,
        ),
        200,
        202,
    )
    return Setup(
        admin=admin,
        products=products,
        start_stock=start_stock,
        shoppers=people,
        charged=charged,
        coupons=coupons,
        probe=probe,
        probe_order=placed["id"],
        probe_product=probe_product,
        drop=drop_id,
    )


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


@dataclass(frozen=True)
class Sample:
    at: float  # time.monotonic() when the round began
    done: float  # and when its last answer came
    failed: tuple[str, ...]  # the reads that did not answer 2xx in time, with what they got


class Probe:
    """A shopper reading their balance, an order, a product and their coupons, all along.

    One read per service the faults hit, so a fault shows in the reads it breaks.
    """

    INTERVAL_S = 0.25
    TIMEOUT_S = 2.0

    def __init__(self, client: httpx.AsyncClient, setup: Setup) -> None:
        self.client = client
        probe = setup.probe
        self.reads = {
            "balance": f"/api/users/{probe.id}/balance",
            "order": f"/api/orders/{setup.probe_order}",
            "product": f"/api/products/{setup.probe_product}",
            "coupons": f"/api/users/{probe.id}/coupons",
        }
        self.headers = probe.headers
        self.samples: list[Sample] = []
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def _read(self, name: str, path: str) -> str | None:
        try:
            response = await self.client.get(path, headers=self.headers, timeout=self.TIMEOUT_S)
        except httpx.HTTPError as exc:
            return f"{name} {type(exc).__name__}"
        return None if response.is_success else f"{name} {response.status_code}"

    async def run(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            results = await asyncio.gather(*[self._read(n, p) for n, p in self.reads.items()])
            self.samples.append(Sample(began, time.monotonic(), tuple(r for r in results if r)))
            rest = self.INTERVAL_S - (time.monotonic() - began)
            if rest > 0:
                try:
                    await asyncio.wait_for(self._stop.wait(), rest)
                except TimeoutError:
                    pass

    def all_ok_since(self, since: float) -> bool:
        """True when the reads answered 2xx in every round since `since` (and there was one)."""
        rounds = [s for s in self.samples if s.at >= since]
        return bool(rounds) and not any(s.failed for s in rounds)


def recovery(samples: list[Sample], ended: float, until: float) -> float | None:
    """Seconds after `ended` from which every read answered 2xx up to `until`; None if the
    last round before `until` still failed (or none was made). A round still waiting for an
    answer at `until` is left out: the next fault may have broken it."""
    window = [s for s in samples if ended <= s.at and s.done < until]
    if not window or window[-1].failed:
        return None
    failed = [s for s in window if s.failed]
    if not failed:
        return 0.0
    after = next(s for s in window if s.at > failed[-1].at)
    return after.at - ended
