"""Order throughput and latency through the gateway: orders/s and p50/p99 from POST to PAID.

Usage: python bench/order_bench.py [GATEWAY_URL] [--orders N] [--concurrency C]
Needs a running stack (`make dev`) and the admin password (SHOP_ADMIN_PASSWORD, default the
local stack's). Creates its own users and products, then fires N orders with ?wait=true from C
concurrent clients and stops by itself.
"""

import argparse
import asyncio
import os
import statistics
import time
import uuid

import httpx


async def login(client: httpx.AsyncClient, email: str, password: str) -> dict[str, str]:
    r = await client.post("/api/auth/login", json={"email": email, "password": password})
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def new_user(client: httpx.AsyncClient, balance: int) -> tuple[str, dict[str, str]]:
    email = f"bench-{uuid.uuid4().hex[:12]}@example.com"
    r = await client.post(
        "/api/users", json={"name": "Bench", "email": email, "password": "bench-password"}
    )
    r.raise_for_status()
    headers = await login(client, email, "bench-password")
    user_id = r.json()["id"]
    charge = await client.post(
        f"/api/users/{user_id}/balance/charge", json={"amount": balance}, headers=headers
    )
    charge.raise_for_status()
    return user_id, headers


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url", nargs="?", default="http://127.0.0.1:8000")
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--users", type=int, default=50)
    args = parser.parse_args()
    password = os.environ.get("SHOP_ADMIN_PASSWORD", "admin-dev-password")
    limits = httpx.Limits(max_connections=args.concurrency + 10)
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
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(args.orders):
            queue.put_nowait(i)

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
                r = await client.post(
                    "/api/orders", params={"wait": "true"}, json=body, headers=headers
                )
                latencies.append(time.perf_counter() - start)
                status = (
                    r.json().get("status", str(r.status_code))
                    if r.status_code < 500
                    else str(r.status_code)
                )
                statuses[status] = statuses.get(status, 0) + 1

        print(
            f"set up {len(users)} users and {len(products)} products;"
            f" firing {args.orders} orders from {args.concurrency} clients ...",
            flush=True,
        )
        began = time.perf_counter()
        await asyncio.gather(*[client_loop() for _ in range(args.concurrency)])
        elapsed = time.perf_counter() - began
    latencies.sort()
    q = statistics.quantiles(latencies, n=100)
    print(f"orders: {args.orders}  concurrency: {args.concurrency}  outcomes: {statuses}")
    print(f"throughput: {args.orders / elapsed:.1f} orders/s over {elapsed:.1f} s")
    print(
        f"POST->final latency: p50 {q[49] * 1000:.0f} ms  p99 {q[98] * 1000:.0f} ms  max {latencies[-1] * 1000:.0f} ms"
    )


if __name__ == "__main__":
    asyncio.run(main())
