"""Bearer tokens: a verified token is remembered, but its expiry and signature still count."""

import time

import jwt
import pytest

from shopkit import auth
from shopkit.auth import Principal, issue_token, verify_token
from shopkit.errors import Problem
from shopkit.settings import ServiceSettings

SETTINGS = ServiceSettings(jwt_ttl_seconds=60)


def refused(settings: ServiceSettings, token: str) -> str:
    with pytest.raises(Problem) as caught:
        verify_token(settings, token)
    assert (caught.value.status, caught.value.code) == (401, "INVALID_TOKEN")
    return caught.value.detail or ""


def test_a_token_is_verified_and_then_remembered() -> None:
    token = issue_token(SETTINGS, user_id="u-remembered", role="user")
    first = verify_token(SETTINGS, token)
    hits = auth._verified.cache_info().hits
    assert verify_token(SETTINGS, token) == first == Principal("u-remembered", "user")
    assert auth._verified.cache_info().hits == hits + 1


def test_a_remembered_token_is_refused_once_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    token = issue_token(SETTINGS, user_id="u-expiring", role="user")
    assert verify_token(SETTINGS, token).user_id == "u-expiring"
    later = time.time() + SETTINGS.jwt_ttl_seconds + 1
    monkeypatch.setattr(auth.time, "time", lambda: later)
    assert "expired" in refused(SETTINGS, token)


def test_a_remembered_token_is_not_valid_under_another_secret() -> None:
    token = issue_token(SETTINGS, user_id="u-secret", role="user")
    verify_token(SETTINGS, token)
    other = ServiceSettings(jwt_secret="another-secret-of-enough-length-0123456789")
    refused(other, token)


def test_forged_and_roleless_tokens_are_refused_every_time() -> None:
    token = issue_token(SETTINGS, user_id="u-forged", role="user")
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    roleless = jwt.encode(
        {"sub": "u", "iss": SETTINGS.jwt_issuer, "aud": SETTINGS.jwt_audience, "exp": 2**31},
        SETTINGS.jwt_secret,
        algorithm="HS256",
    )
    for _ in range(2):
        refused(SETTINGS, forged)
        assert refused(SETTINGS, roleless) == "token has no valid role"
