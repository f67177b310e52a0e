from pydantic import SecretStr

from shopkit.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "wallet"
    database_url: str = "postgresql+asyncpg://postgres:postgres@127.0.0.1:5432/wallet"
    admin_email: str = "admin@shop.local"
    # No default: make dev generates one (.local/secrets/shop.env); compose requires it.
    # Changing it changes the admin's password at the next start.
    admin_password: str | None = None
    argon2_time_cost: int = 2
    argon2_memory_kib: int = 19_456
    max_charge: int = 10_000_000
    # The Ed25519 key the wallet signs tokens with (base64url of the 32-byte seed, or PEM).
    # Only the wallet has one; its public key must be in SHOP_JWT_PUBLIC_KEYS.
    jwt_private_key: SecretStr | None = None
