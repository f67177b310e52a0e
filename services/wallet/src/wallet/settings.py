from shopkit.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "wallet"
    database_url: str = "postgresql+asyncpg://postgres:postgres@127.0.0.1:5432/wallet"
    admin_email: str = "admin@shop.local"
    # No default: only the local stack (make dev, compose) sets the documented dev password.
    admin_password: str | None = None
    argon2_time_cost: int = 2
    argon2_memory_kib: int = 19_456
    max_charge: int = 10_000_000
