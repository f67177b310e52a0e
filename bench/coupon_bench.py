"""First-come-first-served coupon burst through the gateway: requests/s, latency, final counts.

By default it starts what it measures and stops it afterwards: a fresh database and Kafka
namespace, the coupon service as `uvicorn --workers N`, and the nginx gateway in front of it.
With `--url` it targets a running stack instead (tokens are minted with the local stack's
signing key, SHOP_JWT_PRIVATE_KEY or .local/secrets/shop.env); start that stack with
SHOP_RATE_LIMITS=off, as the stack this starts is: 10,000 requests a second from one address
are exactly what the gateway's per-address limits refuse.

    .venv/bin/python bench/coupon_bench.py                 # 10,000 requests, 1,000 clients, 100
    .venv/bin/python bench/coupon_bench.py --workers 1     # compare worker counts
    .venv/bin/python bench/coupon_bench.py --url http://127.0.0.1:8000

Every request is for a different user, so 100 get a place (202 PENDING) and the rest must be
409 SOLD_OUT; the run then waits until the coupon's issued_quantity reaches the number of places.
The client is a minimal keep-alive HTTP/1.1 client on raw asyncio streams, so that it costs
far less CPU than the server it measures (both share this machine's cores). Each client opens
its connection and reads the coupon once before the clock starts (the sale page is open).

Own-stack extras: --loop picks uvicorn's event loop (default asyncio, see docs/coupon.md);
--no-gateway hits the service directly; --upstream-keepalive N raises the
gateway's idle keep-alive connections to the coupon service (an experiment, see docs/coupon.md);
COUPON_BENCH_KEEP=<dir> keeps the service and nginx logs; the service log of the last run is
copied to $TMPDIR/coupon-bench.log.
"""

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import orjson

from shopdev.stack import SERVICES, migrate
from shopkit import local_secrets
from shopkit.auth import TokenSigner
from shopkit.kafka_admin import ensure_topics
from shopkit.keys import generate_private_key, load_private_key, public_text

ROOT = Path(__file__).resolve().parents[1]
COUPON = next(s for s in SERVICES if s.name == "coupon")


async def create_coupon(
    client: httpx.AsyncClient, admin: dict[str, str], name: str, quantity: int
) -> str:
    """A FIXED coupon of `quantity` units, made by the admin; its id."""
    created = await client.post(
        "/api/coupons",
        json={
            "name": name,
            "discount_type": "FIXED",
            "discount_value": 1_000,
            "total_quantity": quantity,
        },
        headers=admin,
    )
    created.raise_for_status()
    return str(created.json()["id"])


def signer_of(private_key: str) -> TokenSigner:
    """Tokens as the wallet would sign them (the bench plays the wallet's login)."""
    key = load_private_key(private_key, variable=local_secrets.PRIVATE_KEY)
    return TokenSigner(key, issuer="shop", audience="shop-api", ttl_seconds=3600)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Connection:
    """One keep-alive HTTP/1.1 connection: send a request, read the whole response."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes, token: str) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        status = int((await self.reader.readline()).split(b" ", 2)[1])
        length, chunked, close = 0, False, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value:
                chunked = True
            elif name == "connection" and value == "close":
                close = True
        if chunked:
            data = b""
            while size := int((await self.reader.readline()).strip(), 16):
                data += await self.reader.readexactly(size + 2)
            await self.reader.readline()
        else:
            data = await self.reader.readexactly(length)
        if close:
            await self.close()
        return status, data

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


@dataclass
class Result:
    status: int
    code: str
    latency: float
    user_id: str
    first: bool


async def burst(
    base_url: str, coupon_id: str, tokens: list[tuple[str, str]], clients: int
) -> tuple[list[Result], float]:
    """Every (user id, token) asks once for the coupon, `clients` connections at a time."""
    parts = urlsplit(base_url)
    prefix = parts.path.rstrip("/")
    path = f"{prefix}/api/coupons/{coupon_id}/issue"
    per_client = [tokens[i::clients] for i in range(clients)]
    results: list[Result] = []
    start_line = asyncio.Event()
    connected: list[None] = []

    async def client(share: list[tuple[str, str]]) -> None:
        conn = Connection(parts.hostname or "127.0.0.1", parts.port or 80)
        try:
            if share:  # connect (and look at the coupon) before the sale opens
                await conn.request("GET", f"{prefix}/api/coupons/{coupon_id}", b"", share[0][1])
            connected.append(None)
            await start_line.wait()
            for i, (user_id, token) in enumerate(share):
                body = orjson.dumps({"user_id": user_id})
                began = time.perf_counter()
                status, data = await conn.request("POST", path, body, token)
                answer = orjson.loads(data) if data else {}
                code = answer.get("code") or answer.get("status") or str(status)
                results.append(Result(status, code, time.perf_counter() - began, user_id, i == 0))
        finally:
            await conn.close()

    tasks = [asyncio.create_task(client(share)) for share in per_client if share]
    while len(connected) < len(tasks):  # every connection is open before the clock starts
        await asyncio.sleep(0.05)
    began = time.perf_counter()
    start_line.set()
    await asyncio.gather(*tasks)
    return results, time.perf_counter() - began


async def wait_settled(
    client: httpx.AsyncClient, coupon_id: str, admin: dict[str, str], places: int
) -> tuple[float, int]:
    """Seconds until issued_quantity reaches the places given (or 30 s), and its last value."""
    began = time.perf_counter()
    issued = -1
    while time.perf_counter() - began < 30:
        response = await client.get(f"/api/coupons/{coupon_id}", headers=admin)
        issued = int(response.json()["issued_quantity"])
        if issued >= places:
            break
        await asyncio.sleep(0.05)
    return time.perf_counter() - began, issued


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


class OwnStack:
    """A fresh database, namespace, coupon service (N workers) and gateway; stopped on exit."""

    def __init__(
        self,
        pg_admin_url: str,
        kafka: str,
        workers: int,
        upstream_keepalive: int | None,
        loop: str,
    ) -> None:
        self.pg_admin_url, self.kafka, self.workers = pg_admin_url, kafka, workers
        self.loop = loop
        self.upstream_keepalive = upstream_keepalive
        self.db_name = f"bench_coupon_{uuid.uuid4().hex[:8]}"
        self.dir = Path(tempfile.mkdtemp(prefix="coupon-bench-"))
        self.port, self.gateway_port = free_port(), free_port()
        self.private_key = generate_private_key()  # this run's wallet key, written nowhere
        self.process: subprocess.Popen[bytes] | None = None
        base = pg_admin_url.rsplit("/", 1)[0].split("://", 1)[1]
        self.database_url = f"postgresql+asyncpg://{base}/{self.db_name}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def signer(self) -> TokenSigner:
        return signer_of(self.private_key)

    def _gateway_env(self) -> dict[str, str]:
        ports = {f"SHOP_{s.name.split('-')[0].upper()}_PORT": str(free_port()) for s in SERVICES}
        return {
            **os.environ,
            **ports,
            "SHOP_COUPON_PORT": str(self.port),
            "SHOP_GATEWAY_PORT": str(self.gateway_port),
            "SHOP_LOCAL_DIR": str(self.dir),
            "SHOP_RATE_LIMITS": "off",  # a load test from one address (see the docstring)
        }

    async def __aenter__(self) -> "OwnStack":
        try:
            return await self._start()
        except BaseException:
            await self.__aexit__()
            raise

    async def _start(self) -> "OwnStack":
        conn = await asyncpg.connect(self.pg_admin_url)
        try:
            await conn.execute(f'CREATE DATABASE "{self.db_name}"')
        finally:
            await conn.close()
        await asyncio.to_thread(migrate, ROOT, COUPON, self.database_url)
        namespace = f"b{uuid.uuid4().hex[:8]}."
        await ensure_topics(self.kafka, namespace)
        env = {
            **os.environ,
            "SHOP_SERVICE_NAME": "coupon",
            "SHOP_DATABASE_URL": self.database_url,
            "SHOP_KAFKA_BOOTSTRAP": self.kafka,
            "SHOP_KAFKA_NAMESPACE": namespace,
            "SHOP_JWT_PUBLIC_KEYS": orjson.dumps([public_text(self.signer().public_key)]).decode(),
            "SHOP_LOG_LEVEL": "WARNING",
            "SHOP_RATE_LIMITS": "off",
        }
        log = (self.dir / "coupon.log").open("ab")
        command = [
            *(sys.executable, "-m", "uvicorn", "--factory", COUPON.factory, "--host", "127.0.0.1"),
            *("--port", str(self.port), "--workers", str(self.workers), "--no-access-log"),
            *("--backlog", "4096", "--timeout-graceful-shutdown", "5", "--loop", self.loop),
        ]
        self.process = await asyncio.to_thread(
            subprocess.Popen, command, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        await self._wait_ready()
        gateway = ROOT / "infra" / "local" / "gateway.sh"
        await asyncio.to_thread(
            subprocess.run, ["bash", str(gateway), "start"], env=self._gateway_env(), check=True
        )
        if self.upstream_keepalive:
            await self._raise_upstream_keepalive(self.upstream_keepalive)
        return self

    async def _raise_upstream_keepalive(self, keepalive: int) -> None:
        """An experiment: the gateway's coupon upstream keeps more idle connections open."""
        conf = self.dir / "nginx" / "nginx.conf"
        text = conf.read_text()
        old = f"server 127.0.0.1:{self.port};    keepalive 32;"
        assert old in text, "the gateway template changed; update the bench"
        text = text.replace(old, f"server 127.0.0.1:{self.port}; keepalive {keepalive};")
        text = text.replace(
            "$upstream_response_time", "$upstream_connect_time $upstream_response_time"
        )
        conf.write_text(text)
        pid = int((self.dir / "nginx" / "logs" / "nginx.pid").read_text())
        os.kill(pid, 1)  # SIGHUP: nginx re-reads its configuration
        await asyncio.sleep(1.0)

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    raise RuntimeError(f"coupon exited; see {self.dir / 'coupon.log'}")
                try:
                    ready = await client.get(f"http://127.0.0.1:{self.port}/ready", timeout=2)
                    if ready.status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
        raise RuntimeError("coupon not ready in 60 s")

    async def counts(self, coupon_id: str) -> dict[str, Any]:
        dsn = self.database_url.replace("postgresql+asyncpg://", "postgresql://")
        conn = await asyncpg.connect(dsn)
        try:
            row = await conn.fetchrow(
                "SELECT c.issued_quantity, l.accepted,"
                " (SELECT count(*) FROM user_coupons u WHERE u.coupon_id = c.id"
                "  AND u.status = 'ISSUED') AS issued_rows,"
                " (SELECT count(DISTINCT user_id) FROM user_coupons u WHERE u.coupon_id = c.id"
                "  AND u.status = 'ISSUED') AS issued_users,"
                " (SELECT count(*) FROM user_coupons u WHERE u.coupon_id = c.id"
                "  AND u.status = 'PENDING') AS pending"
                " FROM coupons c JOIN coupon_lines l ON l.coupon_id = c.id WHERE c.id = $1",
                coupon_id,
            )
            return dict(row) if row else {}
        finally:
            await conn.close()

    async def __aexit__(self, *_: object) -> None:
        gateway = ROOT / "infra" / "local" / "gateway.sh"
        await asyncio.to_thread(
            subprocess.run, ["bash", str(gateway), "stop"], env=self._gateway_env(), check=False
        )
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        conn = await asyncpg.connect(self.pg_admin_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
        finally:
            await conn.close()
        if os.environ.get("COUPON_BENCH_KEEP"):
            shutil.copytree(self.dir, os.environ["COUPON_BENCH_KEEP"], dirs_exist_ok=True)
        if (self.dir / "coupon.log").exists():
            shutil.copy(self.dir / "coupon.log", Path(tempfile.gettempdir()) / "coupon-bench.log")
        shutil.rmtree(self.dir, ignore_errors=True)


LOCKING_SCHEMA = """
CREATE TABLE line (id int PRIMARY KEY, accepted int NOT NULL, capacity int NOT NULL,
                   version int NOT NULL DEFAULT 0, CHECK (accepted <= capacity));
CREATE TABLE place (user_id text PRIMARY KEY, position int);
"""


async def compare_locking(pg_admin_url: str, requests: int, connections: int) -> None:
    """Take `requests` places on one hot row from `connections` connections, four ways."""
    name = f"bench_locking_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(pg_admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = pg_admin_url.rsplit("/", 1)[0] + f"/{name}"
    pool = await asyncpg.create_pool(dsn, min_size=connections, max_size=connections)
    assert pool is not None
    try:
        await pool.execute(LOCKING_SCHEMA)

        async def conditional(user: str) -> bool:
            async with pool.acquire() as c, c.transaction():
                await c.execute("INSERT INTO place (user_id) VALUES ($1)", user)
                taken = await c.fetchval(
                    "UPDATE line SET accepted = accepted + 1"
                    " WHERE id = 1 AND accepted < capacity RETURNING accepted"
                )
                if taken is None:
                    raise LookupError
                return True

        async def pessimistic(user: str) -> bool:
            async with pool.acquire() as c, c.transaction():
                row = await c.fetchrow(
                    "SELECT accepted, capacity FROM line WHERE id = 1 FOR UPDATE"
                )
                if row["accepted"] >= row["capacity"]:
                    return False
                await c.execute("INSERT INTO place VALUES ($1, $2)", user, row["accepted"] + 1)
                await c.execute("UPDATE line SET accepted = accepted + 1 WHERE id = 1")
                return True

        retries = Counter[str]()

        async def optimistic(user: str) -> bool:
            while True:
                async with pool.acquire() as c, c.transaction():
                    row = await c.fetchrow(
                        "SELECT accepted, capacity, version FROM line WHERE id = 1"
                    )
                    if row["accepted"] >= row["capacity"]:
                        return False
                    won = await c.fetchval(
                        "UPDATE line SET accepted = accepted + 1, version = version + 1"
                        " WHERE id = 1 AND version = $1 RETURNING accepted",
                        row["version"],
                    )
                    if won is not None:
                        await c.execute("INSERT INTO place VALUES ($1, $2)", user, won)
                        return True
                retries["optimistic"] += 1

        waiting: list[tuple[str, asyncio.Future[bool]]] = []

        async def drain() -> None:
            while waiting:
                batch, waiting[:] = list(waiting), []
                async with pool.acquire() as c, c.transaction():
                    row = await c.fetchrow(
                        "SELECT accepted, capacity FROM line WHERE id = 1 FOR UPDATE"
                    )
                    placed = batch[: row["capacity"] - row["accepted"]]
                    await c.executemany(
                        "INSERT INTO place VALUES ($1, $2)",
                        [(u, row["accepted"] + 1 + i) for i, (u, _) in enumerate(placed)],
                    )
                    await c.execute(
                        "UPDATE line SET accepted = accepted + $1 WHERE id = 1", len(placed)
                    )
                for i, (_, answer) in enumerate(batch):
                    answer.set_result(i < len(placed))

        drainer: list[asyncio.Task[None]] = []

        async def batched(user: str) -> bool:
            answer = asyncio.get_running_loop().create_future()
            waiting.append((user, answer))
            if not drainer or drainer[0].done():
                drainer[:] = [asyncio.create_task(drain())]
            return await answer

        print(f"\n  {requests:,} places taken on one row by {connections} connections\n")
        for label, take in (
            ("conditional UPDATE per request", conditional),
            ("SELECT ... FOR UPDATE per request", pessimistic),
            ("optimistic version column, retry", optimistic),
            ("FOR UPDATE per batch (the service)", batched),
        ):
            await pool.execute(
                "TRUNCATE place; DELETE FROM line;"
                f" INSERT INTO line (id, accepted, capacity) VALUES (1, 0, {requests})"
            )
            gate = asyncio.Semaphore(connections)

            async def one(user: str, take: Any = take, gate: asyncio.Semaphore = gate) -> bool:
                async with gate:
                    return bool(await take(user))

            began = time.perf_counter()
            done = await asyncio.gather(*[one(f"u{i}") for i in range(requests)])
            elapsed = time.perf_counter() - began
            taken = await pool.fetchval("SELECT accepted FROM line WHERE id = 1")
            extra = f", {retries['optimistic']:,} retries" if label.startswith("optimistic") else ""
            print(
                f"  {label:<36} {requests / elapsed:>8,.0f} places/s"
                f"  ({sum(done):,} placed, line at {taken:,}{extra})"
            )
    finally:
        await pool.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="a running gateway; default: start an own stack")
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=1_000)
    parser.add_argument("--quantity", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers (own stack)")
    parser.add_argument(
        "--no-gateway", action="store_true", help="own stack: hit the service, not nginx"
    )
    parser.add_argument(
        "--loop",
        choices=("asyncio", "uvloop"),
        default="asyncio",
        help="own stack: uvicorn's event loop (uvloop starves new connections under a burst)",
    )
    parser.add_argument(
        "--upstream-keepalive",
        type=int,
        help="own stack: raise nginx's idle keep-alive connections to the coupon service",
    )
    parser.add_argument(
        "--pg",
        default=os.environ.get(
            "SHOP_TEST_PG_ADMIN_URL", "postgresql://postgres:postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument(
        "--kafka", default=os.environ.get("SHOP_TEST_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    )
    parser.add_argument(
        "--compare-locking",
        action="store_true",
        help="instead: take places on one hot row four ways, straight on PostgreSQL",
    )
    args = parser.parse_args()
    if args.compare_locking:
        await compare_locking(args.pg, 2_000, 32)
        return

    async with AsyncExitStack() as stack:
        own = (
            None
            if args.url
            else await stack.enter_async_context(
                OwnStack(args.pg, args.kafka, args.workers, args.upstream_keepalive, args.loop)
            )
        )
        base_url = args.url or (own.url if own else "")
        if own and args.no_gateway:
            base_url = f"http://127.0.0.1:{own.port}"
        signer = (
            own.signer()
            if own
            else signer_of(
                local_secrets.ensure(Path(os.environ.get("SHOP_LOCAL_DIR", ROOT / ".local")))[
                    local_secrets.PRIVATE_KEY
                ]
            )
        )
        admin = {"Authorization": f"Bearer {signer.issue(user_id='bench-admin', role='admin')}"}
        client = await stack.enter_async_context(httpx.AsyncClient(base_url=base_url, timeout=30))
        coupon_id = await create_coupon(client, admin, "bench burst", args.quantity)
        users = [str(uuid.uuid4()) for _ in range(args.requests)]
        tokens = [(u, signer.issue(user_id=u, role="user")) for u in users]

        results, elapsed = await burst(base_url, coupon_id, tokens, args.clients)
        places = sum(r.status == 202 for r in results)
        settle_seconds, issued = await wait_settled(client, coupon_id, admin, places)
        counts = await own.counts(coupon_id) if own else {}

    latencies = [r.latency for r in results]
    codes = Counter(f"{r.status} {r.code}" for r in results)
    placed_users = len({r.user_id for r in results if r.status == 202})
    rows = [
        (
            "target",
            base_url
            + (f" (own stack, {args.workers} uvicorn workers, {args.loop} loop)" if own else ""),
        ),
        ("requests / clients", f"{len(results):,} / {args.clients:,}"),
        ("coupon quantity", f"{args.quantity:,}"),
        ("burst duration", f"{elapsed:.2f} s"),
        ("throughput", f"{len(results) / elapsed:,.0f} requests/s"),
        ("latency p50", f"{percentile(latencies, 0.50) * 1000:.1f} ms"),
        ("latency p99", f"{percentile(latencies, 0.99) * 1000:.1f} ms"),
        ("latency max", f"{max(latencies) * 1000:.1f} ms"),
        *[(f"responses {code}", f"{n:,}") for code, n in sorted(codes.items())],
        *[
            (
                f"p50/p99 {code}",
                f"{percentile(ls, 0.5) * 1000:.1f} / {percentile(ls, 0.99) * 1000:.1f} ms",
            )
            for code in sorted(codes)
            if (ls := [r.latency for r in results if f"{r.status} {r.code}" == code])
        ],
        *[
            (
                f"p50/p99 {label}",
                f"{percentile(ls, 0.5) * 1000:.1f} / {percentile(ls, 0.99) * 1000:.1f} ms",
            )
            for label, ls in (
                ("1st request of a client", [r.latency for r in results if r.first]),
                ("later requests", [r.latency for r in results if not r.first]),
            )
            if ls
        ],
        ("distinct users placed", f"{placed_users:,}"),
        ("issued_quantity", f"{issued:,}"),
        ("PENDING settled after", f"{settle_seconds:.2f} s after the burst"),
        *[(f"db {name}", str(value)) for name, value in counts.items()],
    ]
    width = max(len(name) for name, _ in rows)
    print()
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    ok = issued == args.quantity == places == placed_users and not counts.get("pending")
    print(f"\n  {'OK' if ok else 'FAILED'}: exactly {args.quantity} issued to distinct users")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main())
