"""Access tokens: the wallet is the one service that signs them (see shopkit.auth)."""

from functools import lru_cache

from shopkit.auth import Role, TokenSigner, TokenVerifier
from shopkit.keys import KeyRefused, load_private_key
from wallet.settings import Settings


@lru_cache(maxsize=4)
def _signer(private_key: str | None, issuer: str, audience: str, ttl_seconds: int) -> TokenSigner:
    key = load_private_key(private_key, variable="SHOP_JWT_PRIVATE_KEY")
    return TokenSigner(key, issuer=issuer, audience=audience, ttl_seconds=ttl_seconds)


def signer(settings: Settings) -> TokenSigner:
    """The settings' signer, made once; KeyRefused when the key is missing or unusable."""
    key = settings.jwt_private_key.get_secret_value() if settings.jwt_private_key else None
    return _signer(key, settings.jwt_issuer, settings.jwt_audience, settings.jwt_ttl_seconds)


def check_signer(settings: Settings, verifier: TokenVerifier) -> None:
    """Refuse to start unless the signing key's public half is one the services verify with."""
    kid = signer(settings).kid
    if kid not in verifier.keys:
        raise KeyRefused(
            f"SHOP_JWT_PUBLIC_KEYS does not list the public key of SHOP_JWT_PRIVATE_KEY (kid"
            f" {kid}): every service would refuse the wallet's tokens"
        )


def issue_token(settings: Settings, *, user_id: str, role: Role) -> str:
    return signer(settings).issue(user_id=user_id, role=role)
