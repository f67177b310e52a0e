"""One chaos run: a fresh shop, the seeded scenario, the faults under load, quiet, the audit."""

import asyncio
import random
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from chaos import audit, checker, faults
from chaos.books import Books, FaultOutcome
from chaos.load import REQUEST_TIMEOUT_S, Load
from chaos.probe import Probe, recovery
from chaos.set_up import set_up
from chaos.stack import Infra, Shop, delete_namespace, start_shop
from shopdev.stack import SERVICES


@dataclass(frozen=True)
class Pace:
    """How long each part of a run lasts; the smoke keeps a seed under three minutes."""

    rate: float  # requests per second of load
    shoppers: int
    warmup_s: float  # load before the first fault
    gap_s: float  # load between a fault's recovery and the next fault
    tail_s: float  # load after the last fault
    recovery_wait_s: float = 10.0  # at most this long for the reads to answer 2xx again
    issue_share: float = 0.0  # of the load: coupon issue requests (a drop of `drop` coupons)
    drop: int = 0


SMOKE = Pace(rate=20, shoppers=24, warmup_s=4, gap_s=2, tail_s=3, recovery_wait_s=8)
FULL = Pace(rate=30, shoppers=40, warmup_s=10, gap_s=6, tail_s=8)
# Two processes of everything on two cores: a lighter load, and coupon issues among it.
REPLICAS = Pace(
    rate=15,
    shoppers=24,
    warmup_s=5,
    gap_s=4,
    tail_s=4,
    recovery_wait_s=8,
    issue_share=0.1,
    drop=15,
)
SCENARIOS = ("faults", "replicas")


@dataclass
class RunResult:
    seed: int
    ok: bool
    duration_s: float
    orders: dict[str, int]
    failure_codes: dict[str, int]
    faults: list[dict[str, Any]]
    violations: list[str]
    http_status: dict[int, int]
    requests: dict[str, int]
    transport_errors: dict[str, int]
    server_errors: list[str]
    skipped_ticks: int
    settled_after_s: float | None
    drained: bool
    dead_letter_samples: list[str]
    logged: dict[str, dict[str, int]]  # service -> notable log lines (diagnostics, not rules)
    namespace: str
    log_dir: str
    error: str | None = None
    notes: list[str] = field(default_factory=list)


async def _inject_all(
    shop: Shop,
    client: httpx.AsyncClient,
    admin: dict[str, str],
    probe: Probe,
    plan: list[faults.Fault],
    pace: Pace,
) -> list[faults.FaultRecord]:
    records = []
    for fault in plan:
        print(f"[chaos]   fault: {fault.name}", flush=True)
        record = await fault.inject(shop, client, admin)
        records.append(record)
        # Give the reads their chance to come back, then some steady load, before the next.
        deadline = time.monotonic() + pace.recovery_wait_s
        while time.monotonic() < deadline and not probe.all_ok_since(time.monotonic() - 1.0):
            await asyncio.sleep(0.25)
        await asyncio.sleep(pace.gap_s)
    return records


def _score(
    records: list[faults.FaultRecord], probe: Probe, load: Load, observed_until: float
) -> None:
    """Each fault's recovery (from its end to the last failing read before the next fault),
    and the 5xx the load got from its start to the next fault's."""
    for i, record in enumerate(records):
        until = records[i + 1].started if i + 1 < len(records) else observed_until
        record.recovery_s = recovery(probe.samples, record.ended, until)
        back = until if record.recovery_s is None else record.ended + record.recovery_s
        record.outage_s = None if record.recovery_s is None else back - record.started
        failing = [s for s in probe.samples if record.started <= s.at < back and s.failed]
        record.failed_rounds = len(failing)
        record.failed_reads = dict(Counter(f for s in failing for f in s.failed))
        if record.spared and not failing:
            record.outage_s = 0.0  # another replica served: the shopper saw no outage
        codes = Counter(c for at, c in load.traffic.failures if record.started <= at < until)
        record.http_500, record.http_503 = codes[500], codes[503]


async def run_once(
    infra: Infra, seed: int, *, smoke: bool, run_dir: Path, scenario: str = "faults"
) -> RunResult:
    """A fresh shop for `seed`, the scenario and its faults, then the audit.

    `faults`: every kind of fault, one after the other (smoke or full). `replicas`: with two or
    more replicas of every service, kill -9 one replica of each at once, twice, under orders,
    cancels, modifies and coupon issues."""
    began = time.monotonic()
    pace = REPLICAS if scenario == "replicas" else SMOKE if smoke else FULL
    rng = random.Random(seed)
    print(f"[chaos] seed {seed}: starting a fresh shop ...", flush=True)
    shop = await start_shop(infra, run_dir, seed)
    load: Load | None = None
    probe: Probe | None = None
    tasks: list[asyncio.Task[None]] = []
    try:
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        async with httpx.AsyncClient(
            base_url=shop.gateway, timeout=REQUEST_TIMEOUT_S, limits=limits
        ) as client:
            setup = await set_up(client, rng, shoppers=pace.shoppers, drop=pace.drop)
            print(
                f"[chaos] seed {seed}: {len(setup.products)} products, {len(setup.shoppers)}"
                f" shoppers, {len(setup.coupons)} coupons; load at {pace.rate:.0f}/s",
                flush=True,
            )
            load = Load(
                client,
                setup,
                random.Random(rng.random()),
                rate=pace.rate,
                issue_share=pace.issue_share,
            )
            probe = Probe(client, setup)
            tasks = [asyncio.create_task(load.run()), asyncio.create_task(probe.run())]
            await asyncio.sleep(pace.warmup_s)
            if scenario == "replicas":
                services = {spec.name: shop.replicas(spec.name) for spec in SERVICES}
                plan = faults.replica_plan(rng, services)
            else:
                plan = faults.plan(rng, smoke=smoke)
            records = await _inject_all(shop, client, setup.admin, probe, plan, pace)
            last_ended = max(r.ended for r in records)
            await asyncio.sleep(pace.tail_s)
            load.stop()
            await load.drain(REQUEST_TIMEOUT_S + 2)
            print(f"[chaos] seed {seed}: load stopped; waiting for quiet ...", flush=True)
            settled = await audit.wait_for_quiet(
                shop, last_fault_ended=last_ended, limit=checker.SETTLE_LIMIT_S
            )
            drained = await audit.wait_for_drain(shop, timeout=30)
            probe.stop()
            await asyncio.gather(*tasks)
            _score(records, probe, load, time.monotonic())
            read = await audit.read_books(shop)
    finally:
        for task in tasks:
            task.cancel()
        shop.stop_services()
        try:
            await asyncio.wait_for(delete_namespace(infra.bootstrap, shop.namespace), 60)
        except Exception as exc:  # leftover topics only slow a later start: report, go on
            print(f"[chaos] could not delete topics of {shop.namespace}: {exc!r}", flush=True)
    traffic = load.traffic
    books = Books(
        orders=read.orders,
        wallets=read.wallets,
        charged=setup.charged,
        start_stock=setup.start_stock,
        stock=read.stock,
        coupons=read.coupons,
        user_coupons=read.user_coupons,
        payments=read.payments,
        analytics=read.analytics,
        analytics_orders=read.analytics_orders,
        dead_letters=read.dead_letters,
        dlt_messages=read.dlt_messages,
        accepted_orders=traffic.accepted,
        settled_after_s=settled,
        faults=[FaultOutcome(r.name, r.recovery_s, r.spared, r.failed_reads) for r in records],
        http_status=dict(traffic.status),
    )
    violations = [str(v) for v in checker.check(books)]
    violations += [f"fault not undone: {r.name}: {r.error}" for r in records if r.error]
    return RunResult(
        seed=seed,
        ok=not violations,
        duration_s=round(time.monotonic() - began, 1),
        orders=dict(Counter(o.status for o in read.orders)),
        failure_codes=dict(read.failure_codes),
        faults=[_fault_json(r) for r in records],
        violations=violations,
        http_status=dict(sorted(traffic.status.items())),
        requests=dict(sorted(traffic.by_op.items())),
        transport_errors=dict(traffic.errors),
        server_errors=traffic.server_errors,
        skipped_ticks=traffic.skipped,
        settled_after_s=None if settled is None else round(settled, 1),
        drained=drained,
        dead_letter_samples=read.dead_letter_samples,
        logged=notable_log_lines(run_dir / "logs"),
        namespace=shop.namespace,
        log_dir=str(run_dir / "logs"),
    )


NOTABLE = {
    "dead-lettering": "dead-lettering message",
    "500 tracebacks": "Exception in ASGI application",
    "kafka connect errors": "Unable connect to node",
}


def notable_log_lines(log_dir: Path) -> dict[str, dict[str, int]]:
    """How often each service logged what tells a fault's story: dead-lettering attempts
    (also those whose own write failed, which leave no row), unhandled errors, reconnects."""
    found: dict[str, dict[str, int]] = {}
    for path in sorted(log_dir.glob("*.log")):
        counts = Counter[str]()
        with path.open(errors="replace") as lines:
            for line in lines:
                for name, needle in NOTABLE.items():
                    if needle in line:
                        counts[name] += 1
        found[path.stem] = dict(counts)
    return found


def _fault_json(record: faults.FaultRecord) -> dict[str, Any]:
    out = asdict(record)
    for key in ("started", "ended"):
        out.pop(key)
    out["down_s"] = record.down_s
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in out.items()}
