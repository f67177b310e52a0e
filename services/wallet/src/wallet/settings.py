from pydantic import Field, SecretStr

from shopkit.limits import Rule, RuleSetting
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
    # The RSA key the wallet signs tokens with (base64url of its DER, PKCS#8, or PEM).
    # Only the wallet has one; its public key must be in SHOP_JWT_PUBLIC_KEYS.
    jwt_private_key: SecretStr | None = None
    # Password hashes at once (each takes argon2_memory_kib) and how many more may wait for a
    # thread before a login or registration is answered 503 (see passwords.py).
    hash_concurrency: int = Field(default=2, ge=1)
    hash_queue: int = Field(default=16, ge=0)
    # Abuse limits (shopkit.limits): COUNT/SECONDS[/LOCKOUT]. Failed logins lock the account,
    # and separately the client address, for LOCKOUT seconds, doubling each time until a
    # correct login (per account) or until it has been quiet a while.
    limit_login_failures_per_account: RuleSetting = Rule(5, 60, lockout=30)
    limit_login_failures_per_address: RuleSetting = Rule(30, 300, lockout=60)
    limit_registrations_per_address: RuleSetting = Rule(20, 3600)
    limit_charges_per_user: RuleSetting = Rule(30, 60)
