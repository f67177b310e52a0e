"""A registration flood through the gateway: the wallet's peak memory, and orders meanwhile.

    .venv/bin/python bench/register_bench.py                  # 2,000 registrations, 50 at a time
    .venv/bin/python bench/register_bench.py --registrations 500 --concurrency 100

Starts what it measures and stops it afterwards: fresh databases and a Kafka namespace on the
servers of SHOP_TEST_PG_ADMIN_URL / SHOP_TEST_KAFKA_BOOTSTRAP (else the local stack's), the
wallet, catalog, order and payment-mock services and the nginx gateway. The wallet hashes with
its real argon2id parameters (19 MiB per hash). The stack runs with SHOP_RATE_LIMITS=off: this
measures what the wallet itself does with a flood that gets past the gateway's per-address
limits (many addresses), not the limits. A 503 (the hashing queue is full) is retried after its
Retry-After, so every registration is eventually made.

While the registrations run, a few clients place orders with ?wait=true for one shopper. It
prints the wallet's resident memory (before, peak, after; sampled every 50 ms from /proc), the
registrations' rate and 503s, and the orders completed meanwhile with their latency.
"""

import argparse
import asyncio
import os
import secrets
import shutil
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import asyncpg
import httpx
from aiokafka.admin import AIOKafkaAdminClient
from local_infra import pg_admin_url

from shopdev.stack import SERVICES, ServiceProcess, free_port, migrate
from shopdev.testing import session_keys
from shopkit import local_secrets
from shopkit.kafka_admin import ensure_topics

ROOT = Path(__file__).resolve().parents[1]
STARTED = ("wallet", "catalog", "order", "payment-mock")
ADMIN_PASSWORD = secrets.token_urlsafe(18)
CREDENTIALS = session_keys().credentials(ADMIN_PASSWORD)  # made for this run, written nowhere


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Stack:
    """The services an order needs, and the gateway, on fresh databases; stopped on exit."""

    def __init__(self) -> None:
        self.admin_url = pg_admin_url()
        self.kafka = os.environ.get("SHOP_TEST_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
        self.suffix = uuid.uuid4().hex[:8]
        self.namespace = f"r{self.suffix}."
        self.dir = Path(tempfile.mkdtemp(prefix="register-bench-"))
        self.gateway_port = free_port()
        self.ports = {s.name: free_port() for s in SERVICES}
        self.processes: dict[str, ServiceProcess] = {}
        self.databases: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def gateway(self, command: str) -> None:
        env = {
            **os.environ,
            **{f"SHOP_{n.split('-')[0].upper()}_PORT": str(p) for n, p in self.ports.items()},
            "SHOP_GATEWAY_PORT": str(self.gateway_port),
            "SHOP_LOCAL_DIR": str(self.dir),
            "SHOP_RATE_LIMITS": "off",
        }
        subprocess.run(["bash", str(ROOT / "infra/local/gateway.sh"), command], env=env, check=True)

    async def __aenter__(self) -> "Stack":
        base = self.admin_url.rsplit("/", 1)[0].split("://", 1)[1]
        await ensure_topics(self.kafka, self.namespace)
        common = {
            "SHOP_KAFKA_BOOTSTRAP": self.kafka,
            "SHOP_KAFKA_NAMESPACE": self.namespace,
            "SHOP_PAYMENT_URL": f"http://127.0.0.1:{self.ports['payment-mock']}",
            "SHOP_RATE_LIMITS": "off",
            "SHOP_LOG_LEVEL": "WARNING",
        }
        conn = await asyncpg.connect(self.admin_url)
        try:
            for spec in (s for s in SERVICES if s.name in STARTED):
                name = f"bench_{spec.database}_{self.suffix}"
                await conn.execute(f'CREATE DATABASE "{name}"')
                self.databases.append(name)
                url = f"postgresql+asyncpg://{base}/{name}"
                await asyncio.to_thread(migrate, ROOT, spec, url)
                self.processes[spec.name] = ServiceProcess(
                    spec=spec,
                    port=self.ports[spec.name],
                    env={
                        **common,
                        **local_secrets.service_env(spec.name, CREDENTIALS),
                        "SHOP_DATABASE_URL": url,
                    },
                    log_path=self.dir / f"{spec.name}.log",
                )
        finally:
            await conn.close()
        for process in self.processes.values():
            process.start()
        await asyncio.gather(*[asyncio.to_thread(p.wait_ready) for p in self.processes.values()])
        await asyncio.to_thread(self.gateway, "start")
        return self

    def wallet_pid(self) -> int:
        process = self.processes["wallet"].process
        assert process is not None
        return process.pid

    async def __aexit__(self, *_: object) -> None:
        await asyncio.to_thread(self.gateway, "stop")
        for process in self.processes.values():
            process.stop()
        conn = await asyncpg.connect(self.admin_url)
        try:
            for name in self.databases:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()
        admin = AIOKafkaAdminClient(bootstrap_servers=self.kafka)
        await admin.start()
        try:
            mine = [t for t in await admin.list_topics() if t.startswith(self.namespace)]
            if mine:
                await admin.delete_topics(mine)
        finally:
            await admin.close()
        shutil.rmtree(self.dir, ignore_errors=True)


async def register_all(client: httpx.AsyncClient, count: int, concurrency: int) -> Counter[int]:
    """Make `count` users, `concurrency` requests at a time; every answer's status counted."""
    statuses: Counter[int] = Counter()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            queue.get_nowait()
            body = {
                "name": "Flood",
                "email": f"flood-{uuid.uuid4().hex[:12]}@example.com",
                "password": "flood-password",
            }
            while True:
                answer = await client.post("/api/users", json=body)
                statuses[answer.status_code] += 1
                if answer.status_code != 503:
                    break
                await asyncio.sleep(float(answer.headers.get("Retry-After", "1")))

    await asyncio.gather(*[worker() for _ in range(concurrency)])
    return statuses


async def place_orders(
    client: httpx.AsyncClient, headers: dict[str, str], body: dict[str, object], stop: asyncio.Event
) -> list[tuple[str, float]]:
    """Orders with ?wait=true one after another until `stop`: (final status, seconds) each."""
    done: list[tuple[str, float]] = []
    while not stop.is_set():
        began = time.perf_counter()
        answer = await client.post(
            "/api/orders", json=body, headers=headers, params={"wait": "true"}
        )
        status = answer.json().get("status", str(answer.status_code))
        done.append((status, time.perf_counter() - began))
    return done


async def sample_rss(pid: int, stop: asyncio.Event) -> float:
    peak = 0.0
    while not stop.is_set():
        peak = max(peak, rss_mib(pid))
        await asyncio.sleep(0.05)
    return peak


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--registrations", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--order-clients", type=int, default=4)
    args = parser.parse_args()
    async with Stack() as stack:
        limits = httpx.Limits(max_connections=args.concurrency + args.order_clients + 10)
        async with httpx.AsyncClient(base_url=stack.url, timeout=60, limits=limits) as client:
            login = await client.post(
                "/api/auth/login", json={"email": "admin@shop.local", "password": ADMIN_PASSWORD}
            )
            login.raise_for_status()
            admin = {"Authorization": f"Bearer {login.json()['access_token']}"}
            product = await client.post(
                "/api/products",
                headers=admin,
                json={
                    "name": "Bench item",
                    "category": "ELECTRONICS",
                    "price": 1_000,
                    "stock": 1_000_000,
                    "description": "bench",
                },
            )
            product.raise_for_status()
            shopper = {"name": "Buyer", "email": f"buyer-{stack.suffix}@example.com"}
            created = await client.post("/api/users", json=shopper | {"password": "buyer-pass"})
            created.raise_for_status()
            user_id = created.json()["id"]
            token = await client.post(
                "/api/auth/login", json={"email": shopper["email"], "password": "buyer-pass"}
            )
            headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
            charged = await client.post(
                f"/api/users/{user_id}/balance/charge", json={"amount": 10_000_000}, headers=headers
            )
            charged.raise_for_status()
            order = {
                "user_id": user_id,
                "items": [{"product_id": product.json()["id"], "quantity": 1}],
            }

            pid = stack.wallet_pid()
            before = rss_mib(pid)
            stop = asyncio.Event()
            sampler = asyncio.create_task(sample_rss(pid, stop))
            ordering = [
                asyncio.create_task(place_orders(client, headers, order, stop))
                for _ in range(args.order_clients)
            ]
            began = time.perf_counter()
            statuses = await register_all(client, args.registrations, args.concurrency)
            took = time.perf_counter() - began
            stop.set()
            peak = await sampler
            orders = [o for batch in await asyncio.gather(*ordering) for o in batch]
            await asyncio.sleep(1.0)
            after = rss_mib(pid)

    outcomes = Counter(status for status, _ in orders)
    latencies = sorted(seconds for _, seconds in orders)
    made = statuses[201]
    print(
        f"registrations: {made} made in {took:.1f} s ({made / took:.1f}/s), answers {dict(statuses)}"
    )
    print(f"wallet RSS: {before:.0f} MiB before, {peak:.0f} MiB peak, {after:.0f} MiB after")
    if latencies:
        p50 = latencies[len(latencies) // 2]
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        print(
            f"orders meanwhile: {dict(outcomes)} ({len(orders) / took:.1f}/s),"
            f" p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms"
        )


if __name__ == "__main__":
    asyncio.run(main())
