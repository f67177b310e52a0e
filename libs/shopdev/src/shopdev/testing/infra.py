"""Which PostgreSQL and Kafka a test session uses: the environment's, testcontainers' or the
repo's own local scripts'."""

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


def repo_root() -> Path:
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "infra" / "local").is_dir() and (parent / "pyproject.toml").is_file():
            return parent
    raise RuntimeError("cannot find the repository root (infra/local)")


@dataclass(frozen=True)
class Infra:
    pg_admin_url: str  # postgresql://user:pass@host:port/postgres
    kafka_bootstrap: str

    def database_url(
        self, name: str, *, driver: str = "postgresql+asyncpg", role: tuple[str, str] | None = None
    ) -> str:
        """The URL of database `name`, as the admin or as `role` (user, password)."""
        base = self.pg_admin_url.rsplit("/", 1)[0].split("://", 1)[1]
        if role is not None:
            base = f"{role[0]}:{role[1]}@{base.rsplit('@', 1)[1]}"
        return f"{driver}://{base}/{name}"


def _docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _local_infra() -> Infra:
    root = repo_root()
    for script in ("postgres.sh", "kafka.sh"):
        subprocess.run(["bash", str(root / "infra" / "local" / script), "start"], check=True)
    user = os.environ.get("SHOP_PG_USER", "postgres")
    password = os.environ.get("SHOP_PG_PASSWORD", "postgres")
    port = os.environ.get("SHOP_PG_PORT", "5432")
    kafka_port = os.environ.get("SHOP_KAFKA_PORT", "9092")
    return Infra(
        pg_admin_url=f"postgresql://{user}:{password}@127.0.0.1:{port}/postgres",
        kafka_bootstrap=f"127.0.0.1:{kafka_port}",
    )


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    pg, kafka = (
        os.environ.get("SHOP_TEST_PG_ADMIN_URL"),
        os.environ.get("SHOP_TEST_KAFKA_BOOTSTRAP"),
    )
    if pg and kafka:
        yield Infra(pg_admin_url=pg, kafka_bootstrap=kafka)
    elif _docker_available():
        from testcontainers.kafka import KafkaContainer
        from testcontainers.postgres import PostgresContainer

        with (
            PostgresContainer("postgres:17", driver=None) as pgc,
            KafkaContainer("apache/kafka:3.9.1").with_kraft() as kc,
        ):
            yield Infra(
                pg_admin_url=pgc.get_connection_url(), kafka_bootstrap=kc.get_bootstrap_server()
            )
    else:
        yield _local_infra()
