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
import sys
import time
import uuid
from collections import Counter
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import orjson
from coupon_client import Connection, create_coupon, percentile, run, signer_of
from coupon_locking import compare_locking
from coupon_stack import ROOT, OwnStack

from shopkit import local_secrets


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
    run(main)
