from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from shopkit.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "analytics"
    database_url: str = "postgresql+asyncpg://postgres:postgres@127.0.0.1:5432/analytics"
    # One projection transaction covers up to this many events.
    batch_max_records: int = Field(default=500, ge=1, le=5000)
    # After a poll that was not full, wait this long before the next: events arriving
    # meanwhile share one transaction (0: poll again at once).
    batch_linger_ms: int = Field(default=200, ge=0, le=5000)

    @field_validator("timezone")
    @classmethod
    def known_timezone(cls, value: str) -> str:
        # Fail at start-up, not with a 500 on the first request.
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value
