"""Connection storm: a coupon flash sale whose 1,000 clients all connect when the sale opens.

bench/coupon_bench.py opens its connections before its clock starts. A real sale does not: every
buyer's browser connects the moment the button goes live, so the gateway's listen queue takes
~1,000 handshakes at once, and any it cannot hold are dropped and retried by TCP a second later.
This bench starts its clock, then opens the connections (so the handshakes are part of each
client's first request), sends 10,000 requests from as many users for a coupon of 100, and checks
that exactly 100 were issued.

It runs two gateway configurations side by side in front of the same coupon service, alternating
rounds (A B B A ..., after one uncounted warm-up round each), and prints each round, the medians
per configuration and their ratio: "before" is the gateway template as it was before the storm
settings (commit 253d5a8, or any template file), "after" is infra/gateway/nginx.conf.template.
Both are rendered by infra/local/gateway.sh, so the "after" backlog is capped at this host's
net.core.somaxconn.

    .venv/bin/python bench/storm_bench.py                   # 3 rounds each (make bench-storm)
    .venv/bin/python bench/storm_bench.py --rounds 5 --workers 1
    .venv/bin/python bench/storm_bench.py --before path/to/another.template

It uses PostgreSQL and Kafka from SHOP_TEST_PG_ADMIN_URL / SHOP_TEST_KAFKA_BOOTSTRAP (a fresh
database and Kafka namespace, dropped afterwards), starts the coupon service as `make dev` does
(shopdev.stack, --workers N) and two nginx gateways on free ports with SHOP_RATE_LIMITS=off (the
abuse limits would refuse 1,000 users from one address), and stops them all at the end. The
client is a lean asyncio (uvloop) HTTP/1.1 client so it costs far less CPU than what it measures;
it opens its sockets in one tight loop of non-blocking connects, as wrk does, but unlike wrk it
counts the connect in the first request's latency, sends exactly one request per user and stops
at exactly --requests. STORM_BENCH_KEEP=<dir> keeps the service and nginx logs.

Exits 1 when a round was not exact (100 issued to distinct users, none pending, no errors); the
latency target is printed, not enforced: it depends on how idle the machine is.
"""

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from coupon_client import create_coupon, percentile, run, signer_of
from storm_client import Round, listen_overflows, storm
from storm_stack import Gateway, Stack

# The gateway template before the storm settings (listen backlog 511, 4,096 worker connections).
BEFORE = "253d5a8"


async def one_round(stack: Stack, gateway: Gateway, args: argparse.Namespace) -> Round:
    assert stack.service is not None
    signer = signer_of(stack.private_key)
    admin = {"Authorization": f"Bearer {signer.issue(user_id='bench-admin', role='admin')}"}
    async with httpx.AsyncClient(base_url=stack.service.url, timeout=30) as client:
        coupon_id = await create_coupon(client, admin, f"storm {gateway.name}", args.quantity)
    users = [str(uuid.uuid4()) for _ in range(args.requests)]
    # Fresh users and tokens every round: no token is in the service's verification cache.
    tokens = [(u, signer.issue(user_id=u, role="user")) for u in users]
    overflows, cpu = listen_overflows(), time.process_time()
    results, connects, elapsed = await storm(gateway.port, coupon_id, tokens, args.connections)
    overflows, cpu = listen_overflows() - overflows, time.process_time() - cpu
    places = sum(r.status == 202 for r in results)
    began = time.perf_counter()
    counts = await stack.counts(coupon_id)
    while time.perf_counter() - began < 30 and (
        counts.get("pending") or counts.get("issued_quantity", 0) < places
    ):
        await asyncio.sleep(0.05)
        counts = await stack.counts(coupon_id)
    return Round(
        gateway.name,
        elapsed,
        results,
        connects,
        int(counts.get("issued_quantity", -1)),
        int(counts.get("pending", -1)),
        int(counts.get("issued_users", -1)),
        time.perf_counter() - began,
        overflows,
        cpu,
    )


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


def report(rounds: list[Round], gateways: list[Gateway], args: argparse.Namespace) -> bool:
    """Print every round, the medians and the targets; True when every round was exact."""
    print(
        f"\n  {args.requests:,} requests, {args.connections:,} connections opened inside the burst,"
        f" coupon of {args.quantity}, coupon service with {args.workers} uvicorn worker(s)"
    )
    for gateway in gateways:
        print(f"  {gateway.name:<6} {gateway.template.name}: {gateway.listen_line()}")
    header = (
        f"\n  {'round':<6}{'config':<8}{'req/s':>8}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}"
        f"{'conn p99':>10}{'1st p99':>9}{'overflow':>9}{'errors':>8}{'issued':>8}{'client':>8}"
        "  responses"
    )
    print(header)
    for i, r in enumerate(rounds, 1):
        codes = Counter(f"{x.status} {x.code}" for x in r.results)
        print(
            f"  {i:<6}{r.variant:<8}{r.rps:>8,.0f}{ms(r.latency(0.5)):>9}{ms(r.latency(0.9)):>9}"
            f"{ms(r.latency(0.99)):>9}{ms(max(x.latency for x in r.results)):>9}"
            f"{ms(percentile(r.connects, 0.99) if r.connects else 0):>10}"
            f"{ms(percentile([x.latency for x in r.results if x.first], 0.99)):>9}"
            f"{r.overflows:>9}{r.errors:>8}{r.issued:>8}{r.client_cpu / r.elapsed:>8.0%}  "
            + ", ".join(f"{c}: {n:,}" for c, n in sorted(codes.items()))
        )
    medians: dict[str, dict[str, float]] = {}
    print(
        f"\n  {'medians':<14}{'req/s':>8}{'p50':>9}{'p90':>9}{'p99':>9}{'errors':>8}"
        f"{'overflow':>9}  issued (every round)"
    )
    for gateway in gateways:
        mine = [r for r in rounds if r.variant == gateway.name]
        m = {
            "rps": statistics.median(r.rps for r in mine),
            "p50": statistics.median(r.latency(0.5) for r in mine),
            "p90": statistics.median(r.latency(0.9) for r in mine),
            "p99": statistics.median(r.latency(0.99) for r in mine),
        }
        medians[gateway.name] = m
        print(
            f"  {gateway.name:<14}{m['rps']:>8,.0f}{ms(m['p50']):>9}{ms(m['p90']):>9}"
            f"{ms(m['p99']):>9}{sum(r.errors for r in mine):>8}"
            f"{sum(r.overflows for r in mine):>9}  " + " ".join(str(r.issued) for r in mine)
        )
    exact = all(
        r.issued == args.quantity == r.distinct and r.pending == 0 and r.errors == 0 for r in rounds
    )
    print(
        f"\n  {'OK' if exact else 'FAILED'}: exactly {args.quantity} issued to distinct users,"
        " none pending, no errors, in every round"
    )
    after = medians["after"]
    ok = exact and after["p99"] <= args.target_p99 / 1000
    if "before" in medians:
        before = medians["before"]
        print(
            f"  after/before: throughput {after['rps'] / before['rps']:.2f}x,"
            f" p99 {after['p99'] / before['p99']:.2f}x, p90 {after['p90'] / before['p90']:.2f}x"
        )
        ok = ok and after["rps"] >= before["rps"] * (1 - args.tolerance)
    print(
        f"  target: p99 <= {args.target_p99} ms and throughput not lower than before"
        f" (within {args.tolerance:.0%} noise): {'met' if ok else 'NOT met'}"
    )
    print(
        "\n  latencies include the connect for a connection's first request (1st p99); conn p99:"
        " start to connected;\n  overflow: handshakes dropped because an accept queue was full"
        " (this host's TcpExt ListenOverflows, gateway and service alike);\n  client: the load"
        " generator's CPU time as a share of the burst (of one core)"
    )
    return exact


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds per configuration")
    parser.add_argument(
        "--warmup", type=int, default=1, help="uncounted rounds per configuration first"
    )
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=1_000)
    parser.add_argument("--quantity", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2, help="coupon service uvicorn workers")
    parser.add_argument(
        "--before", default=BEFORE, help="the baseline gateway: a template file or a git revision"
    )
    parser.add_argument("--only-after", action="store_true", help="skip the baseline gateway")
    parser.add_argument("--target-p99", type=int, default=300, help="milliseconds")
    parser.add_argument(
        "--tolerance", type=float, default=0.05, help="throughput noise allowed against before"
    )
    parser.add_argument(
        "--pg",
        default=os.environ.get(
            "SHOP_TEST_PG_ADMIN_URL",
            f"postgresql://postgres:postgres@127.0.0.1:{os.environ.get('SHOP_PG_PORT', 5432)}"
            "/postgres",
        ),
    )
    parser.add_argument(
        "--kafka",
        default=os.environ.get(
            "SHOP_TEST_KAFKA_BOOTSTRAP", f"127.0.0.1:{os.environ.get('SHOP_KAFKA_PORT', 9092)}"
        ),
    )
    args = parser.parse_args()

    stack = Stack(args)
    rounds: list[Round] = []
    try:
        await stack.start()
        # The first burst after a start pays the service's cold start (pools fill, first requests
        # of every code path) whatever the gateway: not counted.
        for _ in range(args.warmup):
            for gateway in stack.gateways:
                r = await one_round(stack, gateway, args)
                print(f"  warm-up {r.variant}: {r.rps:,.0f} req/s, p99 {ms(r.latency(0.99))}")
        for i in range(args.rounds):
            # A B, then B A: neither configuration always runs first (or on a warmer machine).
            order = stack.gateways if i % 2 == 0 else stack.gateways[::-1]
            for gateway in order:
                rounds.append(await one_round(stack, gateway, args))
                r = rounds[-1]
                print(
                    f"  round {len(rounds)} {r.variant}: {r.rps:,.0f} req/s,"
                    f" p99 {ms(r.latency(0.99))}, issued {r.issued}",
                    flush=True,
                )
        ok = report(rounds, stack.gateways, args)
    finally:
        await stack.stop()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    run(main)
