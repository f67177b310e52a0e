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
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shopkit import auth
from shopkit.auth import Principal, TokenSigner, TokenVerifier
from shopkit.errors import Problem
from shopkit.keys import key_id

ISSUER, AUDIENCE = "shop", "shop-api"
OLD_DEFAULT = "dev-only-secret-change-me-0123456789abcdef"


def signer(ttl_seconds: int = 60) -> TokenSigner:
    key = Ed25519PrivateKey.generate()
    return TokenSigner(key, issuer=ISSUER, audience=AUDIENCE, ttl_seconds=ttl_seconds)


def verifier(*signers: TokenSigner) -> TokenVerifier:
    keys = {s.kid: s.public_key for s in signers}
    return TokenVerifier(keys, issuer=ISSUER, audience=AUDIENCE)


KEY = Ed25519PrivateKey.generate()
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


def signed(payload: dict[str, Any], *, key: Ed25519PrivateKey | None = None, kid: str = "") -> str:
    """A token signed like the wallet's, with SIGNER's kid unless told otherwise."""
    return jwt.encode(payload, key or KEY, algorithm="EdDSA", headers={"kid": kid or SIGNER.kid})


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
    assert jwt.get_unverified_header(token) == {"alg": "EdDSA", "kid": SIGNER.kid, "typ": "JWT"}
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
    "changes", [{"iss": "someone-else"}, {"aud": "another-api"}, {"exp": datetime(2020, 1, 1)}]
)
def test_a_wrong_issuer_audience_or_expiry_is_refused(changes: dict[str, Any]) -> None:
    refused(VERIFIER, signed(claims(**changes)))


def test_only_eddsa_with_a_known_kid_is_accepted() -> None:
    public_pem = SIGNER.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"kid": SIGNER.kid}
    unsigned = b64(orjson.dumps({"alg": "none", "typ": "JWT", **header}))
    payload = b64(orjson.dumps(claims(iat=None, exp=int(time.time()) + 300)))
    attempts = [
        f"{unsigned}.{payload}.",  # alg none
        jwt.encode(claims(), OLD_DEFAULT, algorithm="HS256", headers=header),
        # HMAC keyed with the public key: the classic algorithm confusion
        hs256(claims(), public_pem, SIGNER.kid),
        hs256(claims(), SIGNER.public_key.public_bytes_raw(), SIGNER.kid),
        signed(claims(), key=Ed25519PrivateKey.generate()),  # the right kid, another key
        signed(claims(), key=Ed25519PrivateKey.generate(), kid="another"),
        jwt.encode(claims(), KEY, algorithm="EdDSA"),  # no kid
        "not.a.token",
        "",
    ]
    for token in attempts:
        refused(VERIFIER, token)


def test_the_kid_is_the_rfc7638_thumbprint() -> None:
    # RFC 8037, appendix A.2 and A.3
    raw = base64.urlsafe_b64decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo=")
    key = Ed25519PublicKey.from_public_bytes(raw)
    assert key_id(key) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
