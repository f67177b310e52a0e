"""The connection budget (README "Replicas"): two replicas of every service fit in PostgreSQL's
max_connections, locally and in compose, with room left for migrations and operators."""

import importlib
import re

from shopdev.stack import SERVICES, ServiceSpec
from shopdev.testing import repo_root

ROOT = repo_root()
REPLICAS = 2
# Migration jobs (one connection each), the chaos auditor, psql, a test's admin connection.
HEADROOM = 30
SUPERUSER_RESERVED = 3  # PostgreSQL's default superuser_reserved_connections


def most_connections(spec: ServiceSpec) -> int:
    """Every connection one process of the service can open, from its settings' defaults."""
    package = spec.factory.split(".")[0]
    fields = importlib.import_module(f"{package}.settings").Settings.model_fields
    pool = fields["db_pool_size"].default
    relay = 1  # the outbox relay's own connection, holding (or waiting for) the advisory lock
    sources = (ROOT / spec.directory / "src" / package).glob("*.py")
    listens = any("notifications.listen(" in path.read_text() for path in sources)
    return pool + relay + int(listens)


def max_connections(text: str) -> int:
    found = re.findall(r"max_connections[=\", ]+(\d+)", text)
    assert found, "max_connections is not set"
    return int(found[0])


def test_two_replicas_of_every_service_fit_with_headroom() -> None:
    needed = REPLICAS * sum(most_connections(spec) for spec in SERVICES)
    local = max_connections((ROOT / "infra" / "local" / "postgres.sh").read_text())
    compose = max_connections((ROOT / "docker-compose.yml").read_text())
    for limit in (local, compose):
        assert needed + HEADROOM <= limit - SUPERUSER_RESERVED, (needed, limit)


def test_the_documented_figures_are_the_settings() -> None:
    per_process = {spec.name: most_connections(spec) for spec in SERVICES}
    assert per_process == {
        "wallet": 21,
        "catalog": 21,
        "order": 22,
        "coupon": 22,
        "payment-mock": 21,
        "analytics": 21,
    }
    readme = (ROOT / "README.md").read_text()
    assert "= 128 |" in readme and "| two replicas of each | 256 |" in readme
