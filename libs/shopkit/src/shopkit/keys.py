"""Keys and secrets: Ed25519 token keys, their ids, and refusing any that others could know.

A key travels as text: base64url of its raw 32 bytes (a JWK's `x` or `d`) or PEM. A key's id
(`kid`) is its RFC 7638 JWK thumbprint, so a kid can never name another key than its own.
A service refuses to start with a key or secret that is malformed, too short, too uniform to
be random, or published in this repository (whoever reads the source would hold it).
"""

import base64
import hashlib
import json
from collections.abc import Iterable

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

# SHA-256 of every secret written in this repository, now or in its history: the HS256 key the
# services once shared by default, the local stack's and tests' old fixed passwords and secrets,
# and RFC 8037's example Ed25519 key (its private half is in the RFC). tests/e2e/test_secrets.py
# fails when another key-like string is committed and not refused.
PUBLISHED = frozenset(
    {
        "bc586500685fe849de5194fa14effec739345b892b48f656221f22ed25cb38ef",
        "0031423fc3019a2c0f315c58fa66b4eeeeca1e4163d4688b444d4b6c57601ba5",
        "41bd876b085d6031cb0e04de35b88d77f83a4ba39f879fee40805ac19e356023",
        "7450a422c0b85ecb81d05ea243addf56ad5fa1e77948a21a59f3c3ec8c013260",
        "fac2c5a0c1246a6bb19d9df37f019917456c19a9964cd01004be9c4e0556f8bb",
        "b8dfec35d4c808b0c5b0b66fa49fc47da9f632fec4e69d1599820ce48d3158f8",
        "e3cacd5c2d931295a64f6c3bb3f6ea58c3a9b253b990e32c5abce43c2f94c564",
        "190edf59d5736c3b3ea6bb36d57f5eb415a9b79f3201b381b8f3cb089135981f",
        "f3705484ae9568320b5539fe6d4838e9fe0e003b72eac646c1b41dfb5cd866c4",
    }
)

MIN_SECRET_LENGTH = 32
MIN_PASSWORD_LENGTH = 12
_MIN_DISTINCT = 10  # a random secret of 32+ characters has ~30 distinct ones, "aaaa..." has 1


class KeyRefused(ValueError):
    """A key or secret that a service must not start with; the message names the variable."""


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def is_published(*forms: str) -> bool:
    """Whether any form of a key or secret is one written in this repository."""
    return any(digest(form.strip()) in PUBLISHED for form in forms)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _raw(text: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        return None


def generate_private_key() -> str:
    """A new Ed25519 private key as base64url of its 32-byte seed."""
    return b64url(Ed25519PrivateKey.generate().private_bytes_raw())


def public_text(key: Ed25519PublicKey) -> str:
    return b64url(key.public_bytes_raw())


def key_id(key: Ed25519PublicKey) -> str:
    """The key's RFC 7638 JWK thumbprint (SHA-256, base64url)."""
    jwk = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": public_text(key)}, separators=(",", ":"))
    return b64url(hashlib.sha256(jwk.encode()).digest())


def _uniform(data: bytes) -> bool:
    return len(set(data)) < _MIN_DISTINCT


def load_private_key(text: str | None, *, variable: str) -> Ed25519PrivateKey:
    """An Ed25519 private key from base64url (32-byte seed) or PEM (PKCS#8)."""
    if not text or not text.strip():
        raise KeyRefused(f"{variable} is not set: the wallet needs its Ed25519 signing key")
    text = text.strip()
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(text.encode(), password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise KeyRefused(f"{variable} is not a readable PEM private key: {exc}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyRefused(f"{variable} must be an Ed25519 key, not {type(key).__name__}")
    else:
        raw = _raw(text)
        if raw is None or len(raw) != 32:
            raise KeyRefused(
                f"{variable} must be an Ed25519 key: base64url of 32 bytes (43 characters)"
                f" or PEM; got {len(text)} characters"
            )
        key = Ed25519PrivateKey.from_private_bytes(raw)
    seed = key.private_bytes_raw()
    if is_published(text, b64url(seed)) or _uniform(seed):
        raise KeyRefused(f"{variable} is a published or trivial key; generate your own")
    return key


def load_public_key(text: str, *, variable: str) -> Ed25519PublicKey:
    """An Ed25519 public key from base64url (32 bytes) or PEM (SubjectPublicKeyInfo)."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(text.encode())
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise KeyRefused(f"{variable} holds an unreadable PEM public key: {exc}") from None
        if not isinstance(key, Ed25519PublicKey):
            raise KeyRefused(f"{variable} must hold Ed25519 keys, not {type(key).__name__}")
    else:
        raw = _raw(text)
        if raw is None or len(raw) != 32:
            raise KeyRefused(
                f"{variable} must hold Ed25519 public keys: base64url of 32 bytes"
                f" (43 characters) or PEM; got one of {len(text)} characters"
            )
        try:
            key = Ed25519PublicKey.from_public_bytes(raw)
        except ValueError as exc:
            raise KeyRefused(f"{variable} holds an invalid Ed25519 public key: {exc}") from None
    raw = key.public_bytes_raw()
    if is_published(text, b64url(raw)) or _uniform(raw):
        raise KeyRefused(f"{variable} holds a published or trivial key; generate your own")
    return key


def load_public_keys(texts: Iterable[str], *, variable: str) -> dict[str, Ed25519PublicKey]:
    """The verification keys by kid; at least one."""
    keys = {}
    for text in texts:
        key = load_public_key(text, variable=variable)
        keys[key_id(key)] = key
    if not keys:
        raise KeyRefused(
            f"{variable} is not set: a JSON list of the wallet's Ed25519 public keys, e.g. [\"<43"
            ' base64url characters>"] (make dev writes them to .local/secrets/shop.env)'
        )
    return keys


def check_secret(value: str | None, *, variable: str, min_length: int = MIN_SECRET_LENGTH) -> str:
    """`value`, unless it is missing, short, uniform or published in this repository."""
    if not value:
        raise KeyRefused(f"{variable} is not set")
    if len(value) < min_length:
        raise KeyRefused(f"{variable} is too short: at least {min_length} characters")
    if is_published(value) or len(set(value)) < _MIN_DISTINCT:
        raise KeyRefused(f"{variable} is a published or trivial value; generate your own")
    return value
