"""Keys and secrets a service refuses to start with: malformed, short, trivial or published."""

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key

from shopkit import keys
from shopkit.keys import (
    KeyRefused,
    b64url,
    check_secret,
    key_id,
    load_private_key,
    load_public_keys,
    public_text,
)
from shopkit.keys import (
    generate_private_key as new_key,
)
from shopkit.settings import ServiceSettings

OLD_DEFAULT = "dev-only-secret-change-me-0123456789abcdef"


def refused(call, *args, **kwargs) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(KeyRefused) as caught:
        call(*args, **kwargs)
    return str(caught.value)


def test_a_generated_key_loads_in_both_forms_with_one_kid() -> None:
    private = load_private_key(new_key(), variable="V")
    public = private.public_key()
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    loaded = load_public_keys([public_text(public), pem], variable="V")
    assert list(loaded) == [key_id(public)]
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    assert load_private_key(private_pem, variable="V").private_numbers() == (
        private.private_numbers()
    )
    assert "\n" not in new_key() and "," not in new_key()  # one line, in a list or an env file


@pytest.mark.parametrize(
    "text",
    [
        "",
        "short",
        OLD_DEFAULT,
        "A" * 43,  # a raw Ed25519 key's form: not an RSA key
        b64url(bytes(range(256)) * 2),  # base64url, but no DER
        "-----BEGIN PUBLIC KEY-----\nnonsense\n-----END PUBLIC KEY-----",
    ],
)
def test_malformed_short_or_trivial_keys_are_refused(text: str) -> None:
    message = refused(load_public_keys, [text], variable="SHOP_JWT_PUBLIC_KEYS")
    assert message.startswith("SHOP_JWT_PUBLIC_KEYS")
    assert refused(load_private_key, text, variable="SHOP_JWT_PRIVATE_KEY").startswith(
        "SHOP_JWT_PRIVATE_KEY"
    )


def test_no_public_key_at_all_is_refused() -> None:
    assert "is not set" in refused(load_public_keys, [], variable="SHOP_JWT_PUBLIC_KEYS")


def test_a_key_of_another_type_is_refused() -> None:
    other = Ed25519PrivateKey.generate()
    pem = other.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert "must hold RSA keys" in refused(load_public_keys, [pem.decode()], variable="V")
    der = other.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    assert "must be an RSA key" in refused(load_private_key, b64url(der), variable="V")


def test_a_short_rsa_key_is_refused() -> None:
    short = generate_private_key(public_exponent=65537, key_size=1024)
    assert "too short" in refused(load_public_keys, [public_text(short.public_key())], variable="V")
    der = short.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    assert "too short" in refused(load_private_key, b64url(der), variable="V")


def test_a_published_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    text = new_key()
    leaked = load_private_key(text, variable="V")
    public = public_text(leaked.public_key())
    assert load_public_keys([public], variable="V")
    monkeypatch.setattr(keys, "PUBLISHED", keys.PUBLISHED | {keys.digest(public)})
    assert "published" in refused(load_public_keys, [public], variable="V")
    # A private key whose public half is known is known too (whoever published one, has both).
    assert "published" in refused(load_private_key, text, variable="V")
    # The same key in another form is the same key.
    pem = leaked.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert "published" in refused(load_public_keys, [pem.decode()], variable="V")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "not set"),
        ("", "not set"),
        ("x" * 31, "too short"),
        ("x" * 64, "trivial"),
        (OLD_DEFAULT, "published"),
    ],
)
def test_secrets_must_be_long_random_and_unpublished(value: str | None, reason: str) -> None:
    message = refused(check_secret, value, variable="SHOP_MERCHANT_KEY")
    assert message.startswith("SHOP_MERCHANT_KEY") and reason in message


def test_published_passwords_are_refused_however_long() -> None:
    for password in ("admin-dev-password", "demo-password"):
        assert "published" in refused(check_secret, password, variable="P", min_length=12)


def test_a_random_secret_passes() -> None:
    value = base64.urlsafe_b64encode(bytes(range(40))).decode()
    assert check_secret(value, variable="V") == value


@pytest.mark.parametrize("env", ['["k1", "k2"]', "k1,k2", "k1, k2", " k1 k2 "])
def test_public_keys_are_read_as_a_json_list_or_separated(
    env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOP_JWT_PUBLIC_KEYS", env)
    assert ServiceSettings().jwt_public_keys == ["k1", "k2"]
    monkeypatch.setenv("SHOP_JWT_PUBLIC_KEYS", "")
    assert ServiceSettings().jwt_public_keys == []
