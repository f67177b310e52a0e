"""Credentials made for one test session: token keys and the payment provider's merchant key."""

import json
import secrets
from dataclasses import dataclass
from functools import lru_cache

from shopkit import local_secrets
from shopkit.auth import Role, TokenSigner
from shopkit.keys import generate_private_key, load_private_key, public_text


@dataclass(frozen=True)
class SessionKeys:
    """Credentials made for one test session and written nowhere: the wallet's RSA key
    pair (base64url DER) and the shop's merchant key for the payment provider."""

    private_key: str
    public_key: str
    merchant_key: str

    @property
    def public_keys(self) -> list[str]:
        """What SHOP_JWT_PUBLIC_KEYS holds for the services under test."""
        return [self.public_key]

    def signer(self, *, ttl_seconds: int = 3600) -> TokenSigner:
        key = load_private_key(self.private_key, variable="test key")
        return TokenSigner(key, issuer="shop", audience="shop-api", ttl_seconds=ttl_seconds)

    def credentials(self, admin_password: str) -> dict[str, str]:
        """Everything `make dev` keeps in .local/secrets/shop.env, for a stack of its own
        (give each service its part with `local_secrets.service_env`)."""
        return {
            local_secrets.PRIVATE_KEY: self.private_key,
            local_secrets.PUBLIC_KEYS: json.dumps(self.public_keys),
            local_secrets.MERCHANT_KEY: self.merchant_key,
            local_secrets.ADMIN_PASSWORD: admin_password,
        }

    def headers(self, user_id: str, role: Role = "user") -> dict[str, str]:
        """Authorization headers with a token the wallet could have issued."""
        return {"Authorization": f"Bearer {self.signer().issue(user_id=user_id, role=role)}"}


@lru_cache(maxsize=1)
def session_keys() -> SessionKeys:
    """This test session's credentials, made on first use."""
    private = generate_private_key()
    public = public_text(load_private_key(private, variable="test key").public_key())
    return SessionKeys(private, public, secrets.token_urlsafe(32))
