"""Bearer tokens: the wallet signs them (EdDSA, Ed25519, with a `kid`); every service verifies
them with the wallet's public keys only, so no other service can mint one. `alg` is pinned;
exp, iss, aud and sub are required; roles are user and admin."""

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Annotated, Literal

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shopkit.clock import system_clock
from shopkit.errors import Problem
from shopkit.keys import key_id, load_public_keys
from shopkit.settings import ServiceSettings

ALGORITHM = "EdDSA"
Role = Literal["user", "admin"]


@dataclass(frozen=True)
class Principal:
    user_id: str
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def require_self_or_admin(self, user_id: str) -> None:
        """403 unless the principal is that user or an admin."""
        if not self.is_admin and self.user_id != user_id:
            raise Problem(403, "FORBIDDEN", "you may act only on your own resources")

    def require_admin(self) -> None:
        if not self.is_admin:
            raise Problem(403, "FORBIDDEN", "admin only")


class TokenSigner:
    """Mints access tokens. Only the wallet makes one: it alone is configured with a private key."""

    def __init__(
        self, private_key: Ed25519PrivateKey, *, issuer: str, audience: str, ttl_seconds: int
    ) -> None:
        self._key = private_key
        self.public_key = private_key.public_key()
        self.kid = key_id(self.public_key)
        self.issuer, self.audience, self.ttl_seconds = issuer, audience, ttl_seconds

    def issue(self, *, user_id: str, role: Role) -> str:
        now = system_clock()
        claims = {
            "sub": user_id,
            "role": role,
            "iss": self.issuer,
            "aud": self.audience,
            "iat": now,
            "exp": now + timedelta(seconds=self.ttl_seconds),
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self.kid})


class TokenVerifier:
    """Checks tokens against the wallet's public keys, picked by the token's `kid`: during a
    rotation two keys are valid at once."""

    def __init__(self, keys: Mapping[str, Ed25519PublicKey], *, issuer: str, audience: str) -> None:
        self.keys = dict(keys)
        self.issuer, self.audience = issuer, audience
        # A client sends the same token with every request, so a verified token is remembered
        # (signature, issuer, audience and role checked once) and only its expiry is checked
        # again. The memory is this verifier's: a token is remembered only under its keys.
        self._verified = lru_cache(maxsize=4096)(self._verify)

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> "TokenVerifier":
        """The settings' public keys; KeyRefused (the service must not start) if unusable."""
        keys = load_public_keys(settings.jwt_public_keys, variable="SHOP_JWT_PUBLIC_KEYS")
        return cls(keys, issuer=settings.jwt_issuer, audience=settings.jwt_audience)

    def verify(self, token: str) -> Principal:
        """The token's principal; 401 INVALID_TOKEN when it is forged, malformed or expired."""
        try:
            principal, expires = self._verified(token)
        except jwt.PyJWTError as exc:
            raise Problem(401, "INVALID_TOKEN", str(exc), extra={}) from exc
        if expires <= time.time():  # as PyJWT decides it, with no leeway
            raise Problem(401, "INVALID_TOKEN", "Signature has expired", extra={})
        return principal

    def _verify(self, token: str) -> tuple[Principal, float]:
        """Verify `token` (an exception is not remembered); its principal and expiry."""
        kid = jwt.get_unverified_header(token).get("kid")
        key = self.keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise jwt.InvalidTokenError("token signed with an unknown key")
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=self.audience,
            issuer=self.issuer,
            options={"require": ["exp", "iss", "aud", "sub"]},
        )
        role = claims.get("role")
        if role not in ("user", "admin"):
            raise Problem(401, "INVALID_TOKEN", "token has no valid role")
        return Principal(user_id=str(claims["sub"]), role=role), float(claims["exp"])


# The schemes document who may call a route in its OpenAPI (and feed the docs' Authorize
# button); reading the header is all they do, verifying is principal_of's.
bearer = HTTPBearer(auto_error=False, description="An access token from POST /api/auth/login")
admin_bearer = HTTPBearer(
    scheme_name="AdminBearer", auto_error=False, description="An admin's access token"
)
Credentials = HTTPAuthorizationCredentials | None


def principal_of(request: Request, credentials: Credentials) -> Principal:
    """The principal of the request's bearer token; 401 without a valid one."""
    if credentials is None:
        raise Problem(401, "UNAUTHORIZED", "missing bearer token")
    verifier: TokenVerifier = request.app.state.verifier
    return verifier.verify(credentials.credentials.strip())


# Dependencies are async on purpose: FastAPI runs a plain `def` dependency in a worker
# thread, which cost more than the request itself under a burst (measured on coupons).
async def current_principal(
    request: Request, credentials: Annotated[Credentials, Depends(bearer)]
) -> Principal:
    return principal_of(request, credentials)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


async def admin_principal(
    request: Request, credentials: Annotated[Credentials, Depends(admin_bearer)]
) -> Principal:
    principal = principal_of(request, credentials)
    principal.require_admin()
    return principal


AdminPrincipal = Annotated[Principal, Depends(admin_principal)]
