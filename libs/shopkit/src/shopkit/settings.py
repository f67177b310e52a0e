"""Settings every service shares; each service subclasses ServiceSettings with its own fields."""

import json
import re
from typing import Annotated

from pydantic import BeforeValidator, Field
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _key_list(value: object) -> object:
    """A JSON list, or keys separated by commas or spaces (a PEM needs the JSON form)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        return json.loads(text)
    return [key for key in re.split(r"[\s,]+", text) if key]


KeyList = Annotated[list[str], NoDecode, BeforeValidator(_key_list)]


class ServiceSettings(BaseSettings):
    """Read from SHOP_* environment variables; the only place a service reads the environment."""

    model_config = SettingsConfigDict(env_prefix="SHOP_", extra="ignore")

    service_name: str = "service"
    database_url: str = "postgresql+asyncpg://postgres:postgres@127.0.0.1:5432/postgres"
    # The process's connection budget (README "Replicas"): at most db_pool_size (one asyncpg
    # pool: requests, saga steps, consumer polls) + 1 (the outbox relay's lock) + 1 (order and
    # coupon: LISTEN for ?wait) connections, 22 by default, so two replicas of all six services
    # (264) fit in max_connections=300 with room for migrations and operators.
    db_pool_size: int = Field(default=20, ge=1)
    kafka_bootstrap: str = "127.0.0.1:9092"
    # Prefixes every topic and consumer group: lets test runs and tenants share one cluster.
    kafka_namespace: str = ""
    consumer_max_attempts: int = Field(default=5, ge=1)
    # Records per poll; one poll's keys are handled concurrently (see messaging.Consumer).
    consumer_batch_size: int = Field(default=100, ge=1, le=1000)
    # Handled offsets are committed together at most this often (see messaging.OffsetCommitter).
    consumer_commit_interval_ms: int = Field(default=200, ge=0, le=10_000)
    # Transient failures (database or broker away or busy) are waited out, never dead-lettered:
    # waits start at `consumer_retry_first_s` and double up to `consumer_retry_max_s`. A poll
    # still waiting after `consumer_repoll_after_s` is handed back (sought back and polled
    # again), so the consumer calls poll well within aiokafka's max_poll_interval_ms (300 s)
    # and keeps its partitions however long the outage lasts.
    consumer_retry_first_s: float = Field(default=0.1, gt=0)
    consumer_retry_max_s: float = Field(default=5.0, gt=0)
    consumer_repoll_after_s: float = Field(default=60.0, gt=0, le=240)
    # Every database connection (pools and the relay's): connecting gives up after the first
    # (asyncpg waits 60 s by default); a pooled connection lent for longer than the second (a
    # transaction, or a statement outside one) is terminated, as is any one relay statement,
    # so a half-open connection fails instead of hanging. The server drops a session whose client
    # vanished (TCP keepalives, `db_keepalive_s` idle then 3 probes that far apart) and ends a
    # transaction left idle longer than `db_idle_in_transaction_s`, releasing its locks.
    db_connect_timeout_s: float = Field(default=5.0, gt=0)
    db_command_timeout_s: float = Field(default=30.0, gt=0)
    db_keepalive_s: int = Field(default=10, ge=1)
    db_idle_in_transaction_s: float = Field(default=60.0, gt=0)
    # The outbox relay: how long it waits for Kafka's acknowledgements of one batch (then it
    # rebuilds its producer and sends the rows again), and for a producer to start.
    relay_ack_timeout_s: float = Field(default=30.0, gt=0)
    # /ready answers within this, and is false while the oldest unsent outbox row is older.
    ready_timeout_s: float = Field(default=2.0, gt=0)
    ready_max_outbox_age_s: float = Field(default=60.0, gt=0)
    # /metrics reads the database (outbox, dead letters, sagas) within this, or serves the last
    # values it read.
    metrics_query_timeout_s: float = Field(default=2.0, gt=0)
    jwt_issuer: str = "shop"
    jwt_audience: str = "shop-api"
    jwt_ttl_seconds: int = 3600
    log_level: str = "INFO"
    log_json: bool = True
    # FastAPI's native OpenTelemetry (spans, metrics, logs), for a process whose OpenTelemetry
    # providers are configured. Off, a request skips it; on but with no provider configured, it
    # asks three global providers per request for nothing.
    otel: bool = False
    # Allocations (net) between two young-generation garbage collections; CPython's is 700.
    # Objects alive at start-up are frozen out of collection (see shopkit.app).
    gc_threshold: int = Field(default=10_000, ge=100)
    timezone: str = "Asia/Seoul"
    # Pruning (shopkit.retention). The inbox must remember a message longer than Kafka can
    # deliver it again (topics keep records <= 8 days, see kafka_admin; docs/operations.md).
    inbox_retention_days: int = Field(default=14, ge=1)
    # A client retries a request within minutes; a day later the same key is a new request.
    idempotency_retention_hours: int = Field(default=24, ge=1)
    retention_interval_seconds: float = Field(default=600.0, gt=0)
    retention_batch_size: int = Field(default=1000, ge=1, le=100_000)
    # The wallet's RSA public keys (base64url DER or PEM; a JSON list, or separated by commas):
    # a token is verified with the one its `kid` names. Two during a rotation. No default: a
    # service refuses to start without one.
    jwt_public_keys: KeyList = []
    # Abuse limits per account and client address (shopkit.limits; each service names its own
    # rules). SHOP_RATE_LIMITS=off turns them all off, for load tests only.
    rate_limits: bool = True

    def topic(self, name: str) -> str:
        return f"{self.kafka_namespace}{name}"

    def group(self, name: str) -> str:
        return f"{self.kafka_namespace}{name}"
