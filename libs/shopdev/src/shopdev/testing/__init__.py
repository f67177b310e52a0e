"""Pytest fixtures that give each test session real PostgreSQL and Kafka, isolated.

Infrastructure is chosen in this order: SHOP_TEST_PG_ADMIN_URL / SHOP_TEST_KAFKA_BOOTSTRAP from
the environment; testcontainers when a Docker engine answers; otherwise the repo's own scripts
under infra/local (which start Kafka and PostgreSQL on this machine, idempotently).
Every session gets its own Kafka namespace (topic and group prefix) and every service its own
fresh database, owned by its own login role, so runs never see each other's messages or rows.
"""

# The fixtures are imported here so that pytest registers them with this plugin
# (conftest.py: pytest_plugins = ["shopdev.testing"]).
from shopdev.testing.databases import (
    _CREATED,
    create_database,
    database_refusing,
    drop_test_databases,
    kit_database,
    unique_name,
)
from shopdev.testing.infra import Infra, infra, repo_root
from shopdev.testing.kafka import KafkaProbe, kafka, kafka_namespace, new_namespace
from shopdev.testing.keys import SessionKeys, session_keys
from shopdev.testing.services import poll, serve, settings_for

__all__ = [
    "_CREATED",
    "Infra",
    "KafkaProbe",
    "SessionKeys",
    "create_database",
    "database_refusing",
    "drop_test_databases",
    "infra",
    "kafka",
    "kafka_namespace",
    "kit_database",
    "new_namespace",
    "poll",
    "repo_root",
    "serve",
    "session_keys",
    "settings_for",
    "unique_name",
]
