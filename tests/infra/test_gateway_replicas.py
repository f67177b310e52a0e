"""The local gateway in front of two replicas (infra/local/gateway.sh with SHOP_<NAME>_PORTS):
it balances across them, routes around one that is gone, and resends only what is safe.

Two tiny HTTP servers stand in for two catalog replicas, so this runs in seconds without the
shop's services, PostgreSQL or Kafka."""

import os
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from shopdev.stack import free_ports
from shopdev.testing import repo_root

GATEWAY_SH = repo_root() / "infra" / "local" / "gateway.sh"


@dataclass
class Replica:
    """A catalog stand-in: answers 200 with its name; a `dying` one reads a request to
    /api/products/crash and drops the connection without an answer (killed mid-request)."""

    name: str
    dying: bool = False
    seen: Counter[str] = field(default_factory=Counter)  # "GET /api/products" -> count
    server: ThreadingHTTPServer | None = None

    def start(self) -> int:
        replica = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                replica.seen[f"{self.command} {self.path}"] += 1
                if replica.dying and self.path.endswith("/crash"):
                    self.close_connection = True
                    return
                body = replica.name.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return int(self.server.server_address[1])

    def kill(self) -> None:
        """Stop listening: new connections are refused, as after a kill -9."""
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Gateway:
    url: str
    a: Replica
    b: Replica


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    a, b = Replica("a", dying=True), Replica("b")
    ports = [a.start(), b.start()]
    gateway_port, *others = free_ports(6)  # the other services: nothing listens there
    env = {
        **os.environ,
        "SHOP_LOCAL_DIR": str(tmp_path),
        "SHOP_GATEWAY_PORT": str(gateway_port),
        "SHOP_RATE_LIMITS": "off",
        "SHOP_CATALOG_PORT": str(ports[0]),
        "SHOP_CATALOG_PORTS": f"{ports[0]},{ports[1]}",
        **{
            f"SHOP_{name}_PORT": str(port)
            for name, port in zip(
                ("WALLET", "ORDER", "COUPON", "PAYMENT", "ANALYTICS"), others, strict=True
            )
        },
    }
    for name in ("WALLET", "ORDER", "COUPON", "PAYMENT", "ANALYTICS"):
        env.pop(f"SHOP_{name}_PORTS", None)
    started = subprocess.run(["bash", str(GATEWAY_SH), "start"], env=env, capture_output=True)
    assert started.returncode == 0, started.stderr.decode()
    try:
        conf = (tmp_path / "nginx" / "nginx.conf").read_text()
        assert f"server 127.0.0.1:{ports[0]} " in conf and f"server 127.0.0.1:{ports[1]} " in conf
        yield Gateway(f"http://127.0.0.1:{gateway_port}", a, b)
    finally:
        subprocess.run(["bash", str(GATEWAY_SH), "stop"], env=env, capture_output=True)
        for replica in (a, b):
            if replica.server is not None:
                replica.server.server_close()


def test_requests_are_balanced_across_both_replicas(gateway: Gateway) -> None:
    with httpx.Client(base_url=gateway.url, timeout=5) as client:
        answers = Counter(client.get("/api/products").text for _ in range(8))
    assert answers == {"a": 4, "b": 4}


def test_a_replica_gone_costs_no_request_a_post_included(gateway: Gateway) -> None:
    gateway.a.kill()
    with httpx.Client(base_url=gateway.url, timeout=5) as client:
        reads = [client.get("/api/products") for _ in range(6)]
        writes = [client.post("/api/products", json={"name": "x"}) for _ in range(6)]
    # A refused connection means nothing was sent: nginx passes even a POST to the other one.
    assert [(r.status_code, r.text) for r in reads + writes] == [(200, "b")] * 12


def test_a_read_the_dying_replica_took_is_resent_but_a_post_it_took_is_not(
    gateway: Gateway,
) -> None:
    with httpx.Client(base_url=gateway.url, timeout=5) as client:
        deadline = time.monotonic() + 20
        reads = []
        while not gateway.a.seen["GET /api/products/crash"]:
            assert time.monotonic() < deadline, "replica a never got a read"
            reads.append(client.get("/api/products/crash"))
        writes = []
        while not gateway.a.seen["POST /api/products/crash"]:
            assert time.monotonic() < deadline, "replica a never got a write"
            writes.append(client.post("/api/products/crash", json={"name": "x"}))
    # The read a dropped was resent to b: the client never saw it fail.
    assert [(r.status_code, r.text) for r in reads] == [(200, "b")] * len(reads)
    # The write a dropped may have been committed there: nginx did not resend it to b, the client
    # got a 503 to retry with its Idempotency-Key. Every other write went to b alone.
    assert gateway.a.seen["POST /api/products/crash"] == 1
    assert gateway.b.seen["POST /api/products/crash"] == len(writes) - 1
    assert [(r.status_code, r.text) for r in writes[:-1]] == [(200, "b")] * (len(writes) - 1)
    failed = writes[-1]
    assert failed.status_code == 503
    assert failed.json()["code"] == "SERVICE_UNAVAILABLE"
    assert failed.headers["Retry-After"] == "1"
