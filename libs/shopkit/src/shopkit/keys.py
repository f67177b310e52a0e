"""Keys and secrets: the wallet's RSA token keys, their ids, and refusing any that others could know.

A key travels as one line of text, base64url of its DER encoding (PKCS#8 for the private key,
SubjectPublicKeyInfo for a public one), or as PEM. A key's id (`kid`) is its RFC 7638 JWK
thumbprint, so a kid can never name another key than its own. A service refuses to start with
a key or secret that is malformed, too short, too uniform to be random, or published in this
repository (whoever reads the source would hold it).

RSA rather than Ed25519: every request with a token a service has not seen yet pays one
verification, and RSA verifies several times faster (it signs slower, once per login); see
docs/security.md.
"""

import base64
import hashlib
import json
from collections.abc import Iterable

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import (
    RSAPrivateKey,
    RSAPublicKey,
)
from cryptography.hazmat.primitives.asymmetric.rsa import (
    generate_private_key as generate_rsa,
)

# SHA-256 of every secret written in this repository, now or in its history: the HS256 key the
# services once shared by default, the local stack's and tests' old fixed passwords and secrets,
# RFC 8037's example Ed25519 key (its private half is in the RFC) and RFC 7638's example
# thumbprint (a test's expected kid; it looks like a key). tests/e2e/test_secrets.py
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
        "2fc34706e91a2916e8b08d521dc4e1739e7b0396ad92b8cdc23f37ff83683d4a",
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


KEY_BITS = 2048  # NIST's minimum through 2030; a longer key costs every verification more


def generate_private_key() -> str:
    """A new RSA private key as base64url of its DER (PKCS#8): one line for an env file."""
    key = generate_rsa(public_exponent=65537, key_size=KEY_BITS)
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return b64url(der)


def public_text(key: RSAPublicKey) -> str:
    """A public key as base64url of its DER (SubjectPublicKeyInfo)."""
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return b64url(der)


def _uint(n: int) -> str:
    return b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))


def key_id(key: RSAPublicKey) -> str:
    """The key's RFC 7638 JWK thumbprint (SHA-256, base64url)."""
    numbers = key.public_numbers()
    jwk = json.dumps(
        {"e": _uint(numbers.e), "kty": "RSA", "n": _uint(numbers.n)}, separators=(",", ":")
    )
    return b64url(hashlib.sha256(jwk.encode()).digest())


_FORMS = "base64url of its DER encoding (one line) or PEM"


def load_private_key(text: str | None, *, variable: str) -> RSAPrivateKey:
    """An RSA private key from base64url DER (PKCS#8) or PEM."""
    if not text or not text.strip():
        raise KeyRefused(f"{variable} is not set: the wallet needs its RSA signing key")
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(text.encode(), password=None)
        else:
            key = serialization.load_der_private_key(_raw(text) or b"", password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise KeyRefused(
            f"{variable} is not a readable private key ({_FORMS}); got {len(text)} characters"
        ) from None
    if not isinstance(key, RSAPrivateKey):
        raise KeyRefused(f"{variable} must be an RSA key, not {type(key).__name__}")
    if key.key_size < KEY_BITS:
        raise KeyRefused(f"{variable} is too short: {key.key_size} bits, at least {KEY_BITS}")
    if is_published(text, public_text(key.public_key())):
        raise KeyRefused(f"{variable} is a published key; generate your own")
    return key


def load_public_key(text: str, *, variable: str) -> RSAPublicKey:
    """An RSA public key from base64url DER (SubjectPublicKeyInfo) or PEM."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = serialization.load_der_public_key(_raw(text) or b"")
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise KeyRefused(
            f"{variable} holds an unreadable public key ({_FORMS}); one is {len(text)} characters"
        ) from None
    if not isinstance(key, RSAPublicKey):
        raise KeyRefused(f"{variable} must hold RSA keys, not {type(key).__name__}")
    if key.key_size < KEY_BITS:
        raise KeyRefused(
            f"{variable} holds a key too short: {key.key_size} bits, at least {KEY_BITS}"
        )
    if is_published(text, public_text(key)):
        raise KeyRefused(f"{variable} holds a published key; generate your own")
    return key


def load_public_keys(texts: Iterable[str], *, variable: str) -> dict[str, RSAPublicKey]:
    """The verification keys by kid; at least one."""
    keys = {}
    for text in texts:
        key = load_public_key(text, variable=variable)
        keys[key_id(key)] = key
    if not keys:
        raise KeyRefused(
            f"{variable} is not set: a JSON list of the wallet's RSA public keys (base64url DER"
            " or PEM; make dev writes them to .local/secrets/shop.env)"
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
