"""Bearer tokens: only the private key's holder mints them; a verified token is remembered, but
its expiry, signature and the verifier's keys still count."""

import base64
import hashlib
import hmac
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import (
    RSAPrivateKey,
    RSAPublicNumbers,
    generate_private_key,
)
from cryptography.hazmat.primitives.hashes import SHA256

from shopkit import auth
from shopkit.auth import Principal, TokenSigner, TokenVerifier
from shopkit.errors import Problem
from shopkit.keys import key_id

ISSUER, AUDIENCE = "shop", "shop-api"
OLD_DEFAULT = "dev-only-secret-change-me-0123456789abcdef"


def new_key() -> RSAPrivateKey:
    return generate_private_key(public_exponent=65537, key_size=2048)


def signer(ttl_seconds: int = 60) -> TokenSigner:
    key = new_key()
    return TokenSigner(key, issuer=ISSUER, audience=AUDIENCE, ttl_seconds=ttl_seconds)


def verifier(*signers: TokenSigner) -> TokenVerifier:
    keys = {s.kid: s.public_key for s in signers}
    return TokenVerifier(keys, issuer=ISSUER, audience=AUDIENCE)


KEY = new_key()
SIGNER = TokenSigner(KEY, issuer=ISSUER, audience=AUDIENCE, ttl_seconds=60)
VERIFIER = verifier(SIGNER)


def refused(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(Problem) as caught:
        verifier.verify(token)
    assert (caught.value.status, caught.value.code) == (401, "INVALID_TOKEN")
    return caught.value.detail or ""


def claims(**changes: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    base = {
        "sub": "u-1",
        "role": "admin",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + timedelta(minutes=5),
    }
    return {k: v for k, v in (base | changes).items() if v is not None}


def signed(payload: Any, *, key: RSAPrivateKey | None = None, kid: str = "", **header: Any) -> str:
    """A token signed by PyJWT as the wallet's are, with SIGNER's kid unless told otherwise."""
    headers = {"kid": kid or SIGNER.kid, **header}
    return jwt.encode(payload, key or KEY, algorithm="RS256", headers=headers)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256(payload: dict[str, Any], secret: bytes, kid: str) -> str:
    """An HS256 token made by hand: PyJWT rightly refuses to use a public key as HMAC secret."""
    header = b64(orjson.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}))
    body = b64(orjson.dumps(payload, default=lambda d: int(d.timestamp())))
    mac = hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{b64(mac)}"


def test_a_token_is_verified_and_then_remembered() -> None:
    token = SIGNER.issue(user_id="u-remembered", role="user")
    assert jwt.get_unverified_header(token) == {"alg": "RS256", "kid": SIGNER.kid, "typ": "JWT"}
    first = VERIFIER.verify(token)
    hits = VERIFIER._verified.cache_info().hits
    assert VERIFIER.verify(token) == first == Principal("u-remembered", "user")
    assert VERIFIER._verified.cache_info().hits == hits + 1


def test_a_remembered_token_is_refused_once_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    token = SIGNER.issue(user_id="u-expiring", role="user")
    assert VERIFIER.verify(token).user_id == "u-expiring"
    later = time.time() + SIGNER.ttl_seconds + 1
    monkeypatch.setattr(auth.time, "time", lambda: later)
    assert "expired" in refused(VERIFIER, token)


def test_a_remembered_token_is_not_valid_under_other_keys() -> None:
    token = SIGNER.issue(user_id="u-keys", role="user")
    VERIFIER.verify(token)
    assert "unknown key" in refused(verifier(signer()), token)


def test_two_keys_are_valid_at_once_during_a_rotation() -> None:
    old, new = signer(), signer()
    during, after = verifier(old, new), verifier(new)
    old_token, new_token = (s.issue(user_id="u-rot", role="user") for s in (old, new))
    assert during.verify(old_token) == during.verify(new_token) == Principal("u-rot", "user")
    assert after.verify(new_token).user_id == "u-rot"
    refused(after, old_token)


def test_forged_and_roleless_tokens_are_refused_every_time() -> None:
    token = SIGNER.issue(user_id="u-forged", role="user")
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    roleless = signed(claims(role=None))
    for _ in range(2):
        refused(VERIFIER, forged)
        assert refused(VERIFIER, roleless) == "token has no valid role"


def test_a_token_whose_role_was_altered_is_refused() -> None:
    header, payload, signature = SIGNER.issue(user_id="u-alter", role="user").split(".")
    body = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    altered = b64(orjson.dumps(body | {"role": "admin"}))
    refused(VERIFIER, f"{header}.{altered}.{signature}")


@pytest.mark.parametrize("missing", ["exp", "iss", "aud", "sub"])
def test_each_required_claim_must_be_there(missing: str) -> None:
    refused(VERIFIER, signed(claims(**{missing: None})))


@pytest.mark.parametrize(
    "changes",
    [
        {"iss": "someone-else"},
        {"aud": "another-api"},
        {"aud": ["another-api"]},
        {"exp": datetime(2020, 1, 1)},
        {"exp": "tomorrow"},
        # made at collection, which can be a minute before the test runs: a day of slack
        {"nbf": datetime.now(UTC) + timedelta(days=1)},
        {"sub": ""},
        {"sub": 7},
    ],
)
def test_a_wrong_issuer_audience_or_expiry_is_refused(changes: dict[str, Any]) -> None:
    refused(VERIFIER, signed(claims(**changes)))


def test_an_audience_list_naming_the_shop_is_accepted() -> None:
    token = signed(claims(aud=["another-api", AUDIENCE], role="user"))
    assert VERIFIER.verify(token) == Principal("u-1", "user")


def test_only_rs256_with_a_known_kid_is_accepted() -> None:
    public_pem = SIGNER.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"kid": SIGNER.kid}
    unsigned = b64(orjson.dumps({"alg": "none", "typ": "JWT", **header}))
    payload = b64(orjson.dumps(claims(iat=None, exp=int(time.time()) + 300)))
    der = SIGNER.public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    good = SIGNER.issue(user_id="u-1", role="user")
    attempts = [
        f"{unsigned}.{payload}.",  # alg none
        f"{unsigned}.{payload}.{good.split('.')[2]}",  # alg none with a real signature
        jwt.encode(claims(), OLD_DEFAULT, algorithm="HS256", headers=header),
        # HMAC keyed with the public key: the classic algorithm confusion
        hs256(claims(), public_pem, SIGNER.kid),
        hs256(claims(), der, SIGNER.kid),
        jwt.encode(claims(), KEY, algorithm="PS256", headers=header),  # the key, another alg
        jwt.encode(claims(), Ed25519PrivateKey.generate(), algorithm="EdDSA", headers=header),
        signed(claims(), key=new_key()),  # the right kid, another key
        signed(claims(), key=new_key(), kid="another"),
        jwt.encode(claims(), KEY, algorithm="RS256"),  # no kid
        signed(claims(), crit=["exp"]),  # an extension this verifier does not know
        good.replace(".", ".!", 1),  # a character outside base64url
        good + ".extra",
        "not.a.token",
        "",
    ]
    for token in attempts:
        refused(VERIFIER, token)


def test_the_kid_is_the_rfc7638_thumbprint() -> None:
    # RFC 7638, section 3.1
    n = (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECP"
        "ebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2Qvz"
        "qY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6We"
        "Zu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    )
    modulus = int.from_bytes(base64.urlsafe_b64decode(n + "=" * (-len(n) % 4)), "big")
    key = RSAPublicNumbers(65537, modulus).public_key()
    assert key_id(key) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_a_claims_part_that_is_not_an_object_is_refused() -> None:
    header = b64(orjson.dumps({"alg": "RS256", "typ": "JWT", "kid": SIGNER.kid}))
    body = b64(orjson.dumps(["u-1"]))
    signature = KEY.sign(f"{header}.{body}".encode(), PKCS1v15(), SHA256())
    assert refused(VERIFIER, f"{header}.{body}.{b64(signature)}") == "malformed token"
