"""The shopper's reads, probed all along a run, and how soon they answered again after a fault."""

import asyncio
import time
from dataclasses import dataclass

import httpx

from chaos.set_up import Setup


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
