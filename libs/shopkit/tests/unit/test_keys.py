"""Keys and secrets a service refuses to start with: malformed, short, trivial or published."""

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shopkit import keys
from shopkit.keys import (
    KeyRefused,
    b64url,
    check_secret,
    key_id,
    load_private_key,
    load_public_keys,
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
    loaded = load_public_keys([b64url(public.public_bytes_raw()), pem], variable="V")
    assert list(loaded) == [key_id(public)]
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    assert load_private_key(private_pem, variable="V").private_bytes_raw() == (
        private.private_bytes_raw()
    )


@pytest.mark.parametrize(
    "text",
    [
        "",
        "short",
        OLD_DEFAULT,
        "A" * 43,  # 32 zero bytes: valid length, no randomness
        b64url(bytes(range(31))),  # one byte short
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
    ec = generate_private_key(SECP256R1())
    pem = ec.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert "Ed25519" in refused(load_public_keys, [pem.decode()], variable="V")


def test_a_published_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    leaked = Ed25519PrivateKey.generate()
    public = b64url(leaked.public_key().public_bytes_raw())
    seed = b64url(leaked.private_bytes_raw())
    assert load_public_keys([public], variable="V")
    monkeypatch.setattr(
        keys, "PUBLISHED", keys.PUBLISHED | {keys.digest(public), keys.digest(seed)}
    )
    assert "published" in refused(load_public_keys, [public], variable="V")
    assert "published" in refused(load_private_key, seed, variable="V")
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


def test_the_rfc_8037_example_key_is_refused() -> None:
    """Its private half is printed in the RFC: anyone could sign with it."""
    private = base64.urlsafe_b64decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=")
    key = Ed25519PrivateKey.from_private_bytes(private)
    public = b64url(key.public_key().public_bytes_raw())
    assert "published" in refused(load_public_keys, [public], variable="V")
    assert "published" in refused(load_private_key, b64url(private), variable="V")


@pytest.mark.parametrize("env", ['["k1", "k2"]', "k1,k2", "k1, k2", " k1 k2 "])
def test_public_keys_are_read_as_a_json_list_or_separated(
    env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOP_JWT_PUBLIC_KEYS", env)
    assert ServiceSettings().jwt_public_keys == ["k1", "k2"]
    monkeypatch.setenv("SHOP_JWT_PUBLIC_KEYS", "")
    assert ServiceSettings().jwt_public_keys == []
