"""What the HTTP metrics cost a request: the middleware around a do-nothing ASGI app, against the
bare app, over many calls in one process (no network, no server: only the middleware's own CPU).

    uv run --frozen python bench/metrics_bench.py [--calls 200000]
"""

import argparse
import asyncio
import time
from typing import Any

from shopkit.metrics import HttpMetrics, Metrics


class Route:
    path_format = "/api/orders/{order_id}"


async def bare(scope: Any, receive: Any, send: Any) -> None:
    scope["route"] = Route  # what FastAPI's router leaves in the scope
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def timed(app: Any, calls: int) -> float:
    async def receive() -> Any:
        return {"type": "http.request", "body": b""}

    async def send(message: Any) -> None:
        return None

    started = time.perf_counter()
    for _ in range(calls):
        scope = {"type": "http", "method": "GET", "path": "/api/orders/x", "headers": []}
        await app(scope, receive, send)
    return (time.perf_counter() - started) / calls


async def main(calls: int) -> None:
    measured = HttpMetrics(bare, Metrics())
    await timed(measured, 10_000)  # warm-up: the label child is made once
    rounds = []
    for _ in range(5):  # interleaved, so a busy moment of the machine hits both alike
        rounds.append((await timed(bare, calls), await timed(measured, calls)))
    for without, with_ in rounds:
        print(
            f"bare {without * 1e6:.2f} us  with metrics {with_ * 1e6:.2f} us"
            f"  cost {(with_ - without) * 1e6:.2f} us per request"
        )
    costs = sorted(w - b for b, w in rounds)
    print(f"median cost {costs[len(costs) // 2] * 1e6:.2f} us per request")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200_000)
    asyncio.run(main(parser.parse_args().calls))
