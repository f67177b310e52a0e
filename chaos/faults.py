"""The faults, injected one after the other: kill -9 of services (alone and two at once), a Kafka
restart, a PostgreSQL restart, and a payment provider that times out and approves late; with
replicas, kill -9 of one replica of every service at once while the others serve."""

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from chaos.stack import Shop

KILLED_ALWAYS = ("order", "wallet", "catalog", "coupon")
KILLED_IN_FULL_RUNS = ("payment-mock", "analytics")


@dataclass
class FaultRecord:
    """One fault as it happened (times are time.monotonic())."""

    name: str
    started: float
    ended: float = 0.0  # the thing is back: restarted and ready, or the provider behaves again
    down_s: float = 0.0  # how long it was away (for a kill: until the new process was ready)
    boot_s: float | None = None  # a restarted service: from its start to its /ready
    error: str | None = None  # the fault could not be undone (a violation of its own)
    at: str = ""  # wall-clock start, to find it in the services' logs
    spared: bool = False  # every service kept a live replica: the shopper should see nothing
    # Filled in after the run from the probe's rounds and the load's answers:
    recovery_s: float | None = None  # from `ended` until the reads answered 2xx for good
    outage_s: float | None = None  # what a shopper saw: from `started` until then
    failed_rounds: int = 0  # probe rounds with a read not answering 2xx, fault to recovery
    failed_reads: dict[str, int] = field(default_factory=dict)  # "balance 503" -> rounds
    http_500: int = 0  # load answers 500 from this fault's start to the next fault's
    http_503: int = 0


Inject = Callable[[Shop, httpx.AsyncClient, dict[str, str]], Awaitable[FaultRecord]]


def begin(name: str, *, spared: bool = False) -> FaultRecord:
    return FaultRecord(
        name,
        time.monotonic(),
        at=datetime.now(UTC).isoformat(timespec="seconds"),
        spared=spared,
    )


@dataclass(frozen=True)
class Fault:
    name: str
    inject: Inject
    killed: tuple[str, ...] = ()  # the processes a kill takes down


def kill(*names: str, pause: float, label: str = "", spared: bool = False) -> Fault:
    """kill -9 the processes (`order`, or `order#2` for a second replica), leave them dead for
    `pause` seconds, then start them again. `spared`: another replica of each kept serving."""
    label = label or f"kill -9 {'+'.join(names)}"

    async def inject(shop: Shop, client: httpx.AsyncClient, admin: dict[str, str]) -> FaultRecord:
        record = begin(label, spared=spared)
        await asyncio.gather(*[shop.kill(n) for n in names])
        await asyncio.sleep(pause)
        try:
            boots = await asyncio.gather(*[shop.start(n) for n in names])
            record.boot_s = max(boots)
        except RuntimeError as exc:
            record.error = str(exc)
        record.ended = time.monotonic()
        record.down_s = record.ended - record.started
        return record

    return Fault(label, inject, killed=names)


def restart(component: str, *, pause: float) -> Fault:
    """Stop Kafka or PostgreSQL with its script, keep it down `pause` seconds, start it."""

    async def inject(shop: Shop, client: httpx.AsyncClient, admin: dict[str, str]) -> FaultRecord:
        record = begin(f"{component} restart")
        try:
            await shop.infra.run(component, "stop")
            await asyncio.sleep(pause)
        finally:
            try:
                await shop.infra.run(component, "start")
            except RuntimeError as exc:
                record.error = str(exc)
        record.ended = time.monotonic()
        record.down_s = record.ended - record.started
        return record

    return Fault(f"{component} restart", inject)


async def _behave(
    client: httpx.AsyncClient, admin: dict[str, str], body: dict[str, float], deadline: float
) -> str | None:
    """PUT the provider's behaviour, again until it answers 200 or the deadline passes."""
    last = "no attempt"
    while time.monotonic() < deadline:
        try:
            response = await client.put(
                "/api/payments/behavior", json=body, headers=admin, timeout=5
            )
            if response.status_code == 200:
                return None
            last = f"{response.status_code} {response.text[:200]}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        await asyncio.sleep(0.5)
    return f"PUT /api/payments/behavior: {last}"


def slow_provider(*, hold: float, timeout_rate: float) -> Fault:
    """The provider leaves some payments unanswered past the order service's timeout (each one
    recorded APPROVED: the approval arrives late) and answers the rest slowly."""

    async def inject(shop: Shop, client: httpx.AsyncClient, admin: dict[str, str]) -> FaultRecord:
        record = begin("provider timeouts")
        bad = {"decline_rate": 0.0, "timeout_rate": timeout_rate, "latency_ms": 300}
        good = {"decline_rate": 0.0, "timeout_rate": 0.0, "latency_ms": 0}
        record.error = await _behave(client, admin, bad, time.monotonic() + 15)
        await asyncio.sleep(hold)
        record.error = await _behave(client, admin, good, time.monotonic() + 30) or record.error
        record.ended = time.monotonic()
        record.down_s = record.ended - record.started
        return record

    return Fault("provider timeouts", inject)


def plan(rng: random.Random, *, smoke: bool) -> list[Fault]:
    """The run's faults in a seeded order, with seeded pauses; every kind at least once."""
    singles = KILLED_ALWAYS + (() if smoke else KILLED_IN_FULL_RUNS)
    faults = [kill(name, pause=rng.uniform(1.0, 3.0)) for name in singles]
    faults.append(kill(*rng.sample(KILLED_ALWAYS, 2), pause=rng.uniform(1.0, 3.0)))
    faults.append(restart("kafka", pause=rng.uniform(3.0, 6.0 if smoke else 10.0)))
    faults.append(restart("postgres", pause=rng.uniform(2.0, 4.0)))
    faults.append(slow_provider(hold=rng.uniform(5.0, 8.0), timeout_rate=0.5))
    rng.shuffle(faults)
    return faults


def replica_plan(rng: random.Random, replicas: dict[str, list[str]]) -> list[Fault]:
    """With two or more replicas of every service: kill -9 one replica of each service at once,
    then (once it is back) another of each, so every service loses a process mid-run while
    another one serves. `replicas` maps each service to its process names."""
    order = {service: rng.sample(names, len(names)) for service, names in replicas.items()}
    return [
        kill(
            *[names[round_] for names in order.values()],
            pause=rng.uniform(3.0, 5.0),
            label=f"kill -9 replica of each ({round_ + 1})",
            spared=True,
        )
        for round_ in range(2)
    ]
