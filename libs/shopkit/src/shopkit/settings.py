"""Settings every service shares; each service subclasses ServiceSettings with its own fields."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Read from SHOP_* environment variables; the only place a service reads the environment."""

    model_config = SettingsConfigDict(env_prefix="SHOP_", extra="ignore")

    service_name: str = "service"
    database_url: str = "postgresql+asyncpg://postgres:postgres@127.0.0.1:5432/postgres"
    # Connections kept open per process. Extra ones beyond it are opened and closed per use,
    # which under load cost more CPU (connect, TLS probe, statement cache) than the queries.
    db_pool_size: int = 20
    kafka_bootstrap: str = "127.0.0.1:9092"
    # Prefixes every topic and consumer group: lets test runs and tenants share one cluster.
    kafka_namespace: str = ""
    consumer_max_attempts: int = Field(default=5, ge=1)
    # Records per poll; one poll's keys are handled concurrently (see messaging.Consumer).
    consumer_batch_size: int = Field(default=100, ge=1, le=1000)
    # Handled offsets are committed together at most this often (see messaging.OffsetCommitter).
    consumer_commit_interval_ms: int = Field(default=200, ge=0, le=10_000)
    jwt_secret: str = "dev-only-secret-change-me-0123456789abcdef"
    jwt_issuer: str = "shop"
    jwt_audience: str = "shop-api"
    jwt_ttl_seconds: int = 3600
    log_level: str = "INFO"
    log_json: bool = True
    # FastAPI's native OpenTelemetry (spans, metrics, logs), for a process whose OpenTelemetry
    # providers are configured. Off, a request skips it; on but with no provider configured, it
    # asks three global providers per request for nothing (~7% of the HTTP work here).
    otel: bool = False
    # Allocations (net) between two young-generation garbage collections; CPython's is 700.
    # Objects alive at start-up are frozen out of collection (see shopkit.app).
    gc_threshold: int = Field(default=10_000, ge=100)
    timezone: str = "Asia/Seoul"
    # Abuse limits per account and client address (shopkit.limits; each service names its own
    # rules). SHOP_RATE_LIMITS=off turns them all off, for load tests only.
    rate_limits: bool = True

    def topic(self, name: str) -> str:
        return f"{self.kafka_namespace}{name}"

    def group(self, name: str) -> str:
        return f"{self.kafka_namespace}{name}"
