"""Order throughput and latency through the gateway: orders/s and p50/p99 from POST to PAID.

Usage: python bench/order_bench.py [GATEWAY_URL] [--orders N] [--concurrency C] [--warmup W]
       python bench/order_bench.py [GATEWAY_URL] --sweep 5,10,25,50,100 [--orders N]
Needs a running stack started with SHOP_RATE_LIMITS=off (`make bench-orders` does that: its
users and orders from one address are what the abuse limits refuse) and the admin password
(SHOP_ADMIN_PASSWORD, else the local stack's, from .local/secrets/shop.env). Creates its own users and products, fires W warm-up orders that are not counted
(right after a restart, Kafka's JIT and every pool are cold: the first hundreds of orders cost
up to twice the CPU), then N orders with ?wait=true from C concurrent clients, and stops.
The orders are fired with aiohttp on uvloop, the cheapest client at hand, so that the load
generator takes as little as possible of the CPU the stack runs on.

With --sweep it runs N orders at each concurrency in turn (one warm-up first) and ends with a
table of them all: where orders/s meets the p99 bound.

It also prints where the CPU went while the orders were firing (Linux only, same machine):
milliseconds of CPU per order for each process of the stack, found by its command line, and
for the whole machine, load generator included. On two shared cores, that is what caps orders/s.
"""

import argparse
import asyncio
import os
import resource
import statistics
import time
import uuid
from pathlib import Path

import aiohttp
import httpx
import orjson
import uvloop

from shopkit import local_secrets
from shopkit.app import tune_garbage_collector

LOCAL = Path(os.environ.get("SHOP_LOCAL_DIR", Path(__file__).resolve().parents[1] / ".local"))


async def post_patiently(
    client: httpx.AsyncClient, path: str, body: dict[str, str]
) -> httpx.Response:
    """A 503 from the wallet's bounded password hashing (50 users sign up at once) is retried
    after its Retry-After, within a deadline, as a well-behaved client does."""
    deadline = time.monotonic() + 60
    while True:
        r = await client.post(path, json=body)
        if r.status_code != 503 or time.monotonic() > deadline:
            return r
        await asyncio.sleep(float(r.headers.get("Retry-After", "1")))


async def login(client: httpx.AsyncClient, email: str, password: str) -> dict[str, str]:
    r = await post_patiently(client, "/api/auth/login", {"email": email, "password": password})
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def new_user(client: httpx.AsyncClient, balance: int) -> tuple[str, dict[str, str]]:
    email = f"bench-{uuid.uuid4().hex[:12]}@example.com"
    r = await post_patiently(
        client, "/api/users", {"name": "Bench", "email": email, "password": "bench-password"}
    )
    r.raise_for_status()
    headers = await login(client, email, "bench-password")
    user_id = r.json()["id"]
    charge = await client.post(
        f"/api/users/{user_id}/balance/charge", json={"amount": balance}, headers=headers
    )
    charge.raise_for_status()
    return user_id, headers


ON_LINUX = os.path.exists("/proc/stat")
# Which process of the stack a command line belongs to (the first match wins).
PROCESSES = {
    "order": "order.main",
    "catalog": "catalog.main",
    "wallet": "wallet.main",
    "coupon": "coupon.main",
    "payment-mock": "payment_mock.main",
    "analytics": "analytics.main",
    "kafka": "kafka.Kafka",
    "postgres": "postgres",
    "nginx": "nginx",
}


def cpu_ticks() -> tuple[dict[str, tuple[str, int]], int, int]:
    """CPU ticks used so far by each stack process (pid: its name, ticks), and the machine's
    busy and idle ticks."""
    per: dict[str, tuple[str, int]] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        for name, marker in PROCESSES.items():
            if marker in cmdline:
                per[pid] = (name, int(fields[11]) + int(fields[12]))
                break
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    idle = ticks[3] + ticks[4]
    return per, sum(ticks[:8]) - idle, idle


def cpu_report(
    before: tuple[dict[str, tuple[str, int]], int, int],
    after: tuple[dict[str, tuple[str, int]], int, int],
    orders: int,
    own: float,
) -> float:
    """Print the CPU per order of each process; the whole machine's, in ms.

    A process counts what it used between the two snapshots (all of it if it started in
    between). One that ended in between (an autovacuum worker, say) is left out: its last
    ticks are gone with it; the whole machine's figure still has them."""
    hz = os.sysconf("SC_CLK_TCK")
    ms = 1000 / hz / orders
    per_before, busy_before, idle_before = before
    per_after, busy_after, idle_after = after
    busy, idle = busy_after - busy_before, idle_after - idle_before
    print(
        f"CPU per order while firing ({os.cpu_count()} cores, {100 * busy / max(busy + idle, 1):.0f}% busy):"
    )
    used: dict[str, int] = {}
    for pid, (name, ticks) in per_after.items():
        earlier = per_before.get(pid)
        used[name] = used.get(name, 0) + ticks - (earlier[1] if earlier else 0)
    for name in PROCESSES:
        if name in used:
            print(f"  {name:<13} {used[name] * ms:6.1f} ms")
    print(f"  {'load gen':<13} {own * 1000 / orders:6.1f} ms  (this script)")
    print(f"  {'whole machine':<13} {busy * ms:6.1f} ms")
    return busy * ms


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url", nargs="?", default="http://127.0.0.1:8000")
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=200, help="orders fired first, not counted")
    parser.add_argument(
        "--sweep",
        type=lambda text: [int(c) for c in text.split(",")],
        help="concurrency levels to run one after the other (e.g. 5,10,25,50,100), --orders each,"
        " then a table of them all; overrides --concurrency",
    )
    args = parser.parse_args()
    levels: list[int] = args.sweep or [args.concurrency]
    password = local_secrets.ensure(LOCAL)[local_secrets.ADMIN_PASSWORD]
    limits = httpx.Limits(max_connections=max(levels) + 10)
    async with httpx.AsyncClient(base_url=args.url, timeout=30, limits=limits) as client:
        admin = await login(client, "admin@shop.local", password)
        products = []
        for i in range(10):
            body = {
                "name": f"Bench {i} {uuid.uuid4().hex[:6]}",
                "category": "ELECTRONICS",
                "price": 1_000,
                "stock": 1_000_000,
                "description": "bench",
            }
            r = await client.post("/api/products", json=body, headers=admin)
            r.raise_for_status()
            products.append(r.json()["id"])
        users = await asyncio.gather(*[new_user(client, 10_000_000) for _ in range(args.users)])
        latencies: list[float] = []
        statuses: dict[str, int] = {}
        # As the services do: the load generator's own CPU is taken from the stack's machine.
        tune_garbage_collector(10_000)

        async def fire(count: int, concurrency: int) -> float:
            """Fire `count` orders from `concurrency` clients; the seconds it took."""
            queue: asyncio.Queue[int] = asyncio.Queue()
            for i in range(count):
                queue.put_nowait(i)
            connector = aiohttp.TCPConnector(limit=concurrency + 10)
            timeout = aiohttp.ClientTimeout(total=30)
            async with aiohttp.ClientSession(
                args.url, connector=connector, timeout=timeout
            ) as http:

                async def client_loop() -> None:
                    while True:
                        try:
                            i = queue.get_nowait()
                        except asyncio.QueueEmpty:
                            return
                        user_id, headers = users[i % len(users)]
                        body = {
                            "user_id": user_id,
                            "items": [{"product_id": products[i % len(products)], "quantity": 1}],
                        }
                        start = time.perf_counter()
                        async with http.post(
                            "/api/orders",
                            params={"wait": "true"},
                            data=orjson.dumps(body),
                            headers={**headers, "Content-Type": "application/json"},
                        ) as r:
                            answer = await r.json(loads=orjson.loads) if r.status < 500 else {}
                        latencies.append(time.perf_counter() - start)
                        status = answer.get("status", str(r.status))
                        statuses[status] = statuses.get(status, 0) + 1

                began = time.perf_counter()
                await asyncio.gather(*[client_loop() for _ in range(concurrency)])
                return time.perf_counter() - began

        if args.warmup:
            print(f"warming up with {args.warmup} orders ...", flush=True)
            await fire(args.warmup, levels[0])
        print(f"set up {len(users)} users and {len(products)} products", flush=True)
        rows = []
        for concurrency in levels:
            latencies.clear()
            statuses.clear()
            print(f"firing {args.orders} orders from {concurrency} clients ...", flush=True)
            cpu_before, own_before = (cpu_ticks() if ON_LINUX else None), own_cpu()
            elapsed = await fire(args.orders, concurrency)
            cpu_after, own_used = (cpu_ticks() if ON_LINUX else None), own_cpu() - own_before
            latencies.sort()
            q = statistics.quantiles(latencies, n=100)
            print(f"orders: {args.orders}  concurrency: {concurrency}  outcomes: {statuses}")
            print(f"throughput: {args.orders / elapsed:.1f} orders/s over {elapsed:.1f} s")
            print(
                f"POST->final latency: p50 {q[49] * 1000:.0f} ms  p99 {q[98] * 1000:.0f} ms"
                f"  max {latencies[-1] * 1000:.0f} ms"
            )
            machine = None
            if cpu_before is not None and cpu_after is not None:
                machine = cpu_report(cpu_before, cpu_after, args.orders, own_used)
            rows.append((concurrency, args.orders / elapsed, q[49], q[98], machine))
    if len(rows) > 1:
        print("\nclients  orders/s   p50 ms   p99 ms  CPU/order ms  p99 < 500 ms")
        for concurrency, rate, p50, p99, machine in rows:
            cpu = f"{machine:12.1f}" if machine is not None else f"{'-':>12}"
            print(
                f"{concurrency:7d} {rate:9.1f} {p50 * 1000:8.0f} {p99 * 1000:8.0f} {cpu}"
                f"  {'yes' if p99 < 0.5 else 'no'}"
            )


if __name__ == "__main__":
    uvloop.run(main())
