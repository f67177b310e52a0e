"""Run the shop's services as real processes: used by `make dev` and the end-to-end tests."""

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from shopkit import local_secrets


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    directory: str  # relative to the repo root
    factory: str  # module:function returning the FastAPI app
    port: int
    database: str


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("wallet", "services/wallet", "wallet.main:build_app", 8101, "wallet"),
    ServiceSpec("catalog", "services/catalog", "catalog.main:build_app", 8102, "catalog"),
    ServiceSpec("order", "services/order", "order.main:build_app", 8103, "order"),
    ServiceSpec("coupon", "services/coupon", "coupon.main:build_app", 8104, "coupon"),
    ServiceSpec(
        "payment-mock", "services/payment-mock", "payment_mock.main:build_app", 8105, "payment"
    ),
    ServiceSpec("analytics", "services/analytics", "analytics.main:build_app", 8106, "analytics"),
)


def _env_name(spec: ServiceSpec, what: str) -> str:
    return f"SHOP_{spec.name.split('-')[0].upper()}_{what}"


def port_of(spec: ServiceSpec) -> int:
    return int(os.environ.get(_env_name(spec, "PORT"), spec.port))


# Seconds uvicorn keeps an idle connection: more than the gateway's upstream keepalive_timeout.
KEEP_ALIVE_S = 65
# Matches the gateway's listen backlog (infra/gateway): a flash sale's connection storm waits
# in the kernel's queue instead of for SYN retransmits.
BACKLOG = 4096

# Replica i listens on the service's port + REPLICA_PORT_STEP * i (8101, 8201, ... for wallet).
REPLICA_PORT_STEP = 100


def replicas_of(spec: ServiceSpec) -> int:
    """Processes per service: SHOP_<NAME>_REPLICAS, else SHOP_REPLICAS, else 1.

    Separate processes on separate ports, not uvicorn workers sharing one: each replica crashes
    and is killed on its own, has its own connection pools and consumer-group member, and the
    gateway sees it as a server of its own (a pod's stand-in on this machine)."""
    value = os.environ.get(_env_name(spec, "REPLICAS")) or os.environ.get("SHOP_REPLICAS") or "1"
    count = int(value)
    if not 1 <= count <= 9:
        raise ValueError(f"{_env_name(spec, 'REPLICAS')} must be 1..9, got {value}")
    return count


def replica_ports(spec: ServiceSpec) -> list[int]:
    """The ports of the service's replicas, the first one `port_of(spec)`."""
    first = port_of(spec)
    return [first + REPLICA_PORT_STEP * i for i in range(replicas_of(spec))]


def ports_env(ports: dict[str, list[int]]) -> dict[str, str]:
    """SHOP_<NAME>_PORTS for infra/local/gateway.sh: one upstream server per replica."""
    by_name = {spec.name: spec for spec in SERVICES}
    return {
        _env_name(by_name[name], "PORTS"): ",".join(map(str, found))
        for name, found in ports.items()
    }


def database_role(spec: ServiceSpec) -> str:
    """The login role that owns the service's database (infra/postgres/service-database.sql)."""
    return f"shop_{spec.database}"


def process_env(
    spec: ServiceSpec,
    *,
    database_url: str,
    kafka_bootstrap: str,
    payment_url: str,
    credentials: dict[str, str],
) -> dict[str, str]:
    """The variables a service process starts with (besides SHOP_SERVICE_NAME): `make dev`'s,
    and the names docker-compose.yml must give each service (tests/deploy checks)."""
    return {
        "SHOP_DATABASE_URL": database_url,
        "SHOP_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "SHOP_PAYMENT_URL": payment_url,
        **local_secrets.service_env(spec.name, credentials),
    }


def local_database_url(local_dir: Path, spec: ServiceSpec) -> str:
    """The service's database on the local PostgreSQL, as the service's own role.

    infra/local/postgres.sh creates the role at every start and keeps its password in
    `<local_dir>/secrets/db-<role>.password`.
    """
    role = database_role(spec)
    secret = local_dir / "secrets" / f"db-{role}.password"
    if not secret.is_file():
        raise RuntimeError(f"no {secret}: run 'bash infra/local/postgres.sh start' first")
    port = os.environ.get("SHOP_PG_PORT", "5432")
    password = secret.read_text().strip()
    return f"postgresql+asyncpg://{role}:{password}@127.0.0.1:{port}/{spec.database}"


def migrate(root: Path, spec: ServiceSpec, database_url: str) -> None:
    """Apply the service's Alembic migrations to `database_url`."""
    alembic = Path(sys.executable).parent / "alembic"
    result = subprocess.run(
        [str(alembic), "upgrade", "head"],
        cwd=root / spec.directory,
        env={**os.environ, "SHOP_DATABASE_URL": database_url},
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"migrations failed for {spec.name}:\n{result.stderr}")


@dataclass
class ServiceProcess:
    """One uvicorn process (one replica) of a service; `env` is added to the environment it
    starts with."""

    spec: ServiceSpec
    port: int
    env: dict[str, str]
    log_path: Path
    replica: int = 1  # 1-based, for names and logs
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        """`order` for the first replica, `order#2` for the second, ..."""
        return self.spec.name if self.replica == 1 else f"{self.spec.name}#{self.replica}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                self.spec.factory,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--no-access-log",
                "--timeout-graceful-shutdown",
                "5",
                # Matches the gateway's listen backlog: a storm of new connections (a flash
                # sale, or the gateway reconnecting its pool) waits in the queue, not for TCP's
                # 1 s SYN retransmit. The kernel caps it at net.core.somaxconn.
                "--backlog",
                str(BACKLOG),
                # Longer than the gateway's idle upstream connections live (nginx's default
                # keepalive_timeout, 60 s): nginx closes them, never uvicorn (default 5 s) just as
                # nginx sends a request on one, which reset a request in flight and marked a
                # live replica failed.
                "--timeout-keep-alive",
                str(KEEP_ALIVE_S),
            ],
            env={**os.environ, **self.env, "SHOP_SERVICE_NAME": self.spec.name},
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited; see {self.log_path}")
            try:
                if httpx.get(f"{self.url}/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready in {timeout}s; see {self.log_path}")

    def stop(self, *, kill: bool = False) -> None:
        """Stop the process: SIGTERM and wait, or SIGKILL (a crash) when `kill`."""
        if self.process is None or self.process.poll() is not None:
            return
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def free_ports(count: int) -> list[int]:
    """`count` distinct free local ports (each socket held open until all are picked)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def free_port() -> int:
    """A free local port."""
    return free_ports(1)[0]
