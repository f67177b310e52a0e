from pydantic import Field, SecretStr

from shopkit.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "payment-mock"
    database_url: str = "postgresql+asyncpg://postgres:postgres@127.0.0.1:5432/payment"
    # A "timeout" answers after this long: longer than any sane client timeout.
    timeout_hang_seconds: float = Field(default=30.0, ge=0)
    # Seeds the decline/timeout draws; None draws from OS entropy.
    random_seed: int | None = None
    # The shop's merchant credential (at least 32 random characters); the order service sends it.
    merchant_key: SecretStr | None = None
