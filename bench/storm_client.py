"""The storm's load generator: every connection opened inside the burst, one request per user,
and what a round measured."""

import asyncio
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import orjson
from coupon_client import Connection, percentile


def listen_overflows() -> int:
    """This network namespace's count of handshakes a full accept queue dropped (TcpExt)."""
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return -1
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            return int(dict(zip(names.split(), values.split(), strict=True))["ListenOverflows"])
    return -1


@dataclass
class Result:
    status: int
    code: str
    latency: float  # the first request of a connection includes its connect
    user_id: str
    first: bool = False


@dataclass
class Round:
    variant: str
    elapsed: float
    results: list[Result]
    connects: list[float]
    issued: int
    pending: int
    distinct: int
    settled: float
    overflows: int
    client_cpu: float  # the load generator's own CPU seconds during the burst

    @property
    def rps(self) -> float:
        return len(self.results) / self.elapsed

    def latency(self, p: float) -> float:
        return percentile([r.latency for r in self.results], p)

    @property
    def errors(self) -> int:
        return sum(r.status not in (202, 409) for r in self.results)


async def connected(sock: socket.socket) -> None:
    """Wait until a non-blocking connect finishes; raise its error if it failed."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def writable() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_writer(sock.fileno(), writable)
    try:
        await done
    finally:
        loop.remove_writer(sock.fileno())
    if error := sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
        raise OSError(error, os.strerror(error))


async def storm(
    port: int, coupon_id: str, tokens: list[tuple[str, str]], connections: int
) -> tuple[list[Result], list[float], float]:
    """Every (user, token) asks once for the coupon over `connections` connections, all opened
    after the clock starts; returns the results, the connect times and the burst's duration."""
    path = f"/api/coupons/{coupon_id}/issue"
    results: list[Result] = []
    connects: list[float] = []

    async def client(share: list[tuple[str, str]], sock: socket.socket, began: float) -> None:
        conn = Connection("127.0.0.1", port)
        try:
            try:
                await connected(sock)
                conn.reader, conn.writer = await asyncio.open_connection(sock=sock)
            except OSError as error:
                sock.close()
                now = time.perf_counter() - began
                results.extend(Result(0, type(error).__name__, now, u, True) for u, _ in share)
                return
            connects.append(time.perf_counter() - began)
            for i, (user_id, token) in enumerate(share):
                body = orjson.dumps({"user_id": user_id})
                try:
                    status, data = await asyncio.wait_for(
                        conn.request("POST", path, body, token), 30
                    )
                except (OSError, TimeoutError, asyncio.IncompleteReadError) as error:
                    results.append(Result(0, type(error).__name__, 0.0, user_id))
                    await conn.close()
                    conn = Connection("127.0.0.1", port)
                    began = time.perf_counter()
                    continue
                answer = orjson.loads(data) if data else {}
                code = answer.get("code") or answer.get("status") or str(status)
                results.append(Result(status, code, time.perf_counter() - began, user_id, i == 0))
                began = time.perf_counter()
        finally:
            await conn.close()

    shares = [share for i in range(connections) if (share := tokens[i::connections])]
    began = time.perf_counter()
    # All handshakes at once, as wrk or a sale's browsers send them: a tight loop of
    # non-blocking connects, not one per task as the event loop gets to it.
    socks = []
    for _ in shares:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", port))
        socks.append(sock)
    await asyncio.gather(*[client(share, s, began) for share, s in zip(shares, socks, strict=True)])
    return results, connects, time.perf_counter() - began
