"""The chaos suite's own shop: PostgreSQL, Kafka and the gateway on their own ports and directory
(never the shared 5432/9092), every service as one process per replica (`--replicas`) that the
runner kills and restarts.

Not `make dev`'s supervisor: that one stops the whole shop when a child dies, which is exactly
what the faults do on purpose.
"""

import asyncio
import os
import secrets
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient

from shopdev.stack import SERVICES, ServiceProcess, ServiceSpec, free_ports, migrate, ports_env
from shopdev.testing import session_keys
from shopkit import local_secrets
from shopkit.kafka_admin import ensure_topics

ROOT = Path(__file__).resolve().parents[1]
INFRA = ROOT / "infra" / "local"
PG_USER = PG_PASSWORD = "postgres"
# The suite's credentials, made per process and written nowhere (no key in the repository works).
ADMIN_PASSWORD = secrets.token_urlsafe(18)
CREDENTIALS = session_keys().credentials(ADMIN_PASSWORD)
# Databases of a run are prefixed, so a run never reads rows an earlier one left behind.
DB_PREFIX = "chaos_"


# Every service process any run started, so that an interrupted run still stops them all.
STARTED: list[ServiceProcess] = []


@dataclass(frozen=True)
class Ports:
    """Where the suite's infrastructure listens; defaults chosen away from the shared ones."""

    pg: int = 5532
    kafka: int = 9192
    kafka_controller: int = 9193

    @classmethod
    def from_env(cls) -> "Ports":
        return cls(
            pg=int(os.environ.get("SHOP_PG_PORT", cls.pg)),
            kafka=int(os.environ.get("SHOP_KAFKA_PORT", cls.kafka)),
            kafka_controller=int(
                os.environ.get("SHOP_KAFKA_CONTROLLER_PORT", cls.kafka_controller)
            ),
        )


@dataclass
class Infra:
    """PostgreSQL, Kafka and nginx through infra/local's scripts, with the suite's settings."""

    local_dir: Path
    ports: Ports
    replicas: int = 1  # processes per service
    service_ports: dict[str, list[int]] = field(default_factory=dict)  # one port per replica
    gateway_port: int = 0

    @property
    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "SHOP_LOCAL_DIR": str(self.local_dir),
            "SHOP_PG_PORT": str(self.ports.pg),
            "SHOP_PG_USER": PG_USER,
            "SHOP_PG_PASSWORD": PG_PASSWORD,
            "SHOP_KAFKA_PORT": str(self.ports.kafka),
            "SHOP_KAFKA_CONTROLLER_PORT": str(self.ports.kafka_controller),
            # The load comes from one address at a rate the gateway's per-address limits refuse.
            "SHOP_RATE_LIMITS": "off",
        }
        if self.gateway_port:
            env["SHOP_GATEWAY_PORT"] = str(self.gateway_port)
        for name, ports in self.service_ports.items():
            env[f"SHOP_{name.split('-')[0].upper()}_PORT"] = str(ports[0])
        env.update(ports_env(self.service_ports))
        return env

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def payment_url(self) -> str:
        """The provider's one replica, or the gateway balancing several (as scripts/dev.py)."""
        ports = self.service_ports["payment-mock"]
        return self.gateway if len(ports) > 1 else f"http://127.0.0.1:{ports[0]}"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.ports.kafka}"

    def pg_url(self, database: str, *, driver: str = "postgresql") -> str:
        return f"{driver}://{PG_USER}:{PG_PASSWORD}@127.0.0.1:{self.ports.pg}/{database}"

    async def run(self, component: str, command: str, *, timeout: float = 180.0) -> None:
        """`infra/local/<component>.sh <command>`; raises with its output when it fails."""
        proc = await asyncio.create_subprocess_exec(
            "bash",
            str(INFRA / f"{component}.sh"),
            command,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise RuntimeError(f"{component}.sh {command} took over {timeout:.0f} s") from None
        if proc.returncode != 0:
            raise RuntimeError(f"{component}.sh {command} failed:\n{out.decode(errors='replace')}")

    def stop_all(self) -> None:
        """Stop every service process, the gateway, Kafka and PostgreSQL of the suite (blocking:
        the last cleanup, also after an interrupt)."""
        for process in STARTED:
            process.stop(kill=True)
        for component in ("gateway", "kafka", "postgres"):
            subprocess.run(
                ["bash", str(INFRA / f"{component}.sh"), "stop"],
                env=self.env,
                capture_output=True,
                timeout=90,
                check=False,
            )


@dataclass
class Shop:
    """One run's shop: fresh databases and Kafka namespace, a process per service."""

    infra: Infra
    namespace: str
    processes: dict[str, ServiceProcess]  # `order`, and `order#2`, ... with replicas
    databases: dict[str, str]  # service -> database name

    @property
    def gateway(self) -> str:
        return self.infra.gateway

    def replicas(self, service: str) -> list[str]:
        """The process names of a service's replicas: `order`, `order#2`, ..."""
        return [n for n, p in self.processes.items() if p.spec.name == service]

    async def kill(self, name: str) -> None:
        """SIGKILL, as a crash: nothing is flushed, no consumer leaves its group."""
        await asyncio.to_thread(self.processes[name].stop, kill=True)

    async def start(self, name: str, *, timeout: float = 90.0) -> float:
        """Start the service again; returns seconds until its /ready answered 200."""
        process = self.processes[name]
        began = time.monotonic()
        process.start()
        await asyncio.to_thread(process.wait_ready, timeout)
        return time.monotonic() - began

    def stop_services(self) -> None:
        for process in self.processes.values():
            process.stop(kill=True)


async def reset_databases(infra: Infra) -> dict[str, str]:
    """Drop what earlier runs left and create every service's database with its migrations."""
    admin = await asyncpg.connect(infra.pg_url("postgres"))
    try:
        names = {spec.name: f"{DB_PREFIX}{spec.database}" for spec in SERVICES}
        old = await admin.fetch("SELECT datname FROM pg_database WHERE datname LIKE 'chaos\\_%'")
        for row in old:
            await admin.execute(f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)')
        for name in names.values():
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    specs = {spec.name: spec for spec in SERVICES}
    await asyncio.gather(
        *[
            asyncio.to_thread(
                migrate, ROOT, specs[service], infra.pg_url(db, driver="postgresql+asyncpg")
            )
            for service, db in names.items()
        ]
    )
    return names


async def delete_namespace(bootstrap: str, namespace: str) -> None:
    """Delete a run's topics: thousands of leftover partitions slow a broker's start."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    try:
        await admin.start()
        mine = [t for t in await admin.list_topics() if t.startswith(namespace)]
        if mine:
            await admin.delete_topics(mine)
    finally:
        await admin.close()


def service_env(infra: Infra, spec: ServiceSpec, database: str, namespace: str) -> dict[str, str]:
    return {
        "SHOP_DATABASE_URL": infra.pg_url(database, driver="postgresql+asyncpg"),
        "SHOP_KAFKA_BOOTSTRAP": infra.bootstrap,
        "SHOP_KAFKA_NAMESPACE": namespace,
        **local_secrets.service_env(spec.name, CREDENTIALS),
        # Cheap password hashing: the suite registers dozens of users and needs the CPU.
        "SHOP_ARGON2_TIME_COST": "1",
        "SHOP_ARGON2_MEMORY_KIB": "1024",
        "SHOP_PAYMENT_URL": infra.payment_url,
        "SHOP_RATE_LIMITS": "off",
        "SHOP_LOG_LEVEL": "INFO",
        # Restarts should measure the shop's recovery, not CPython compiling every module from
        # source again: let the first start write bytecode (a sandbox may switch it off).
        "PYTHONDONTWRITEBYTECODE": "",
    }


async def start_shop(infra: Infra, run_dir: Path, seed: int) -> Shop:
    """Fresh databases and namespace, every service started and ready, the gateway up."""
    namespace = f"c{seed}x{uuid.uuid4().hex[:6]}."
    databases = await reset_databases(infra)
    await ensure_topics(infra.bootstrap, namespace)
    processes = {}
    for spec in SERVICES:
        env = service_env(infra, spec, databases[spec.name], namespace)
        for replica, port in enumerate(infra.service_ports[spec.name], start=1):
            suffix = "" if replica == 1 else f"-{replica}"
            process = ServiceProcess(
                spec=spec,
                port=port,
                env=env,
                log_path=run_dir / "logs" / f"{spec.name}{suffix}.log",
                replica=replica,
            )
            processes[process.name] = process
    shop = Shop(infra=infra, namespace=namespace, processes=processes, databases=databases)
    STARTED.extend(processes.values())
    try:
        for process in processes.values():
            process.start()
        await asyncio.gather(*[asyncio.to_thread(p.wait_ready, 120) for p in processes.values()])
    except BaseException:
        shop.stop_services()
        raise
    return shop


async def start_infra(infra: Infra) -> None:
    """PostgreSQL and Kafka of the suite, and the gateway in front of the services' ports."""
    ports = free_ports(len(SERVICES) * infra.replicas + 1)
    infra.service_ports = {
        spec.name: ports[i * infra.replicas : (i + 1) * infra.replicas]
        for i, spec in enumerate(SERVICES)
    }
    infra.gateway_port = ports[-1]
    # A gateway left by an interrupted run would route to old ports: start a fresh one.
    await infra.run("gateway", "stop")
    await infra.run("postgres", "start")
    await infra.run("kafka", "start")
    await infra.run("gateway", "start")
