"""Bearer tokens: the wallet signs them (RS256, with a `kid`); every service verifies them with
the wallet's public keys only, so no other service can mint one. `alg` is pinned; exp, iss, aud
and sub are required; roles are user and admin.

Verification is this module's own (PyJWT signs at login): a service checks a token it has not
seen before on every such request, and PyJWT's general decoding cost about as much as the
signature check (docs/security.md). Its rules are tested in test_auth.py and the gateway's token
matrix, against tokens PyJWT makes."""

import base64
import binascii
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Annotated, Any, Literal

import jwt
import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.hashes import SHA256
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shopkit.clock import system_clock
from shopkit.errors import Problem
from shopkit.keys import key_id, load_public_keys
from shopkit.settings import ServiceSettings

ALGORITHM = "RS256"
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
        self, private_key: RSAPrivateKey, *, issuer: str, audience: str, ttl_seconds: int
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


class InvalidToken(Exception):
    """A token that proves nothing: malformed, forged, expired or not for this shop."""


def _segment(text: str) -> bytes:
    """One base64url part of a token; refuses characters outside the alphabet."""
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


def _json_object(segment: bytes) -> dict[str, Any]:
    value = orjson.loads(segment)
    if not isinstance(value, dict):
        raise InvalidToken("malformed token")
    return value


class TokenVerifier:
    """Checks tokens against the wallet's public keys, picked by the token's `kid`: during a
    rotation two keys are valid at once."""

    def __init__(self, keys: Mapping[str, RSAPublicKey], *, issuer: str, audience: str) -> None:
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
        except InvalidToken as exc:
            raise Problem(401, "INVALID_TOKEN", str(exc), extra={}) from exc
        if expires <= time.time():
            raise Problem(401, "INVALID_TOKEN", "Signature has expired", extra={})
        return principal

    def _verify(self, token: str) -> tuple[Principal, float]:
        """Verify `token` (an exception is not remembered); its principal and expiry."""
        claims = self._claims(token)
        for name in ("exp", "iss", "aud", "sub"):
            if name not in claims:
                raise InvalidToken(f'Token is missing the "{name}" claim')
        expires, not_before = claims["exp"], claims.get("nbf", 0)
        if not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in (expires, not_before)
        ):
            raise InvalidToken("exp and nbf must be numbers")
        if not_before > time.time():
            raise InvalidToken("The token is not yet valid (nbf)")
        if claims["iss"] != self.issuer:
            raise InvalidToken("Invalid issuer")
        audience = claims["aud"]
        if audience != self.audience and not (
            isinstance(audience, list) and self.audience in audience
        ):
            raise InvalidToken("Audience doesn't match")
        subject, role = claims["sub"], claims.get("role")
        if not isinstance(subject, str) or not subject:
            raise InvalidToken("sub must be a non-empty string")
        if role not in ("user", "admin"):
            raise InvalidToken("token has no valid role")
        return Principal(user_id=subject, role=role), float(expires)

    def _claims(self, token: str) -> dict[str, Any]:
        """The claims of a token whose RS256 signature one of our keys made (RFC 7515)."""
        try:
            header_part, claims_part, signature_part = token.split(".")
            header = _json_object(_segment(header_part))
            signed = f"{header_part}.{claims_part}".encode("ascii")
            signature, claims = _segment(signature_part), _segment(claims_part)
        except (ValueError, binascii.Error, orjson.JSONDecodeError):
            raise InvalidToken("malformed token") from None
        if header.get("alg") != ALGORITHM:
            raise InvalidToken(f"token not signed with {ALGORITHM}")
        if "crit" in header:  # extensions this verifier does not understand must be refused
            raise InvalidToken("token has critical extensions")
        kid = header.get("kid")
        key = self.keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise InvalidToken("token signed with an unknown key")
        try:
            key.verify(signature, signed, PKCS1v15(), SHA256())
        except InvalidSignature:
            raise InvalidToken("Signature verification failed") from None
        try:
            return _json_object(claims)
        except orjson.JSONDecodeError:
            raise InvalidToken("malformed token") from None


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
# thread, which costs more than the request itself under a burst.
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
