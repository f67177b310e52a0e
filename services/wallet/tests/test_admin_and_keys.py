"""The admin's password follows the configuration; the wallet starts only with usable keys."""

import secrets
import uuid

import httpx
import jwt
import pytest

from shopdev.testing import Infra, new_namespace, serve, session_keys
from shopkit.keys import KeyRefused, generate_private_key, key_id, load_private_key, public_text
from wallet.main import build_app
from wallet.settings import Settings

from .conftest import ADMIN_EMAIL, ADMIN_PASSWORD


@pytest.fixture(scope="module")
async def namespace(infra: Infra) -> str:
    """Topics of their own: these extra wallets must not join the session wallet's group."""
    return await new_namespace(infra, "w")


def settings_for(infra: Infra, wallet_db: str, namespace: str, **changes: object) -> Settings:
    base: dict[str, object] = {
        "database_url": wallet_db,
        "kafka_bootstrap": infra.kafka_bootstrap,
        "kafka_namespace": namespace,
        "argon2_time_cost": 1,
        "argon2_memory_kib": 1024,
        "log_json": False,
        "jwt_public_keys": session_keys().public_keys,
        "jwt_private_key": session_keys().private_key,
    }
    return Settings.model_validate(base | changes)


async def login(client: httpx.AsyncClient, password: str) -> int:
    answer = await client.post("/api/auth/login", json={"email": ADMIN_EMAIL, "password": password})
    return answer.status_code


async def test_a_new_admin_password_takes_over_at_the_next_start(
    infra: Infra, wallet_db: str, namespace: str, wallet: httpx.AsyncClient
) -> None:
    assert await login(wallet, ADMIN_PASSWORD) == 200
    changed = secrets.token_urlsafe(16)
    # A second start (another replica) on the same database with the new password.
    async with serve(
        build_app(settings_for(infra, wallet_db, namespace, admin_password=changed))
    ) as later:
        assert await login(later, changed) == 200
        assert await login(later, ADMIN_PASSWORD) == 401
    async with serve(
        build_app(settings_for(infra, wallet_db, namespace, admin_password=ADMIN_PASSWORD))
    ) as again:
        assert await login(again, ADMIN_PASSWORD) == 200


async def test_a_rotation_keeps_old_tokens_valid_until_the_old_key_goes(
    infra: Infra, wallet_db: str, namespace: str
) -> None:
    new_private = generate_private_key()
    new_key = load_private_key(new_private, variable="test").public_key()
    new_public, old_public = public_text(new_key), session_keys().public_keys[0]
    old_token = session_keys().headers("someone", "admin")
    nobody = f"/api/users/{uuid.uuid4()}/balance"  # 404 once the admin's token is accepted
    rotating = settings_for(
        infra,
        wallet_db,
        namespace,
        jwt_private_key=new_private,
        jwt_public_keys=[new_public, old_public],
        admin_password=ADMIN_PASSWORD,
    )
    async with serve(build_app(rotating)) as wallet:
        login = await wallet.post(
            "/api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        )
        new_token = {"Authorization": f"Bearer {login.json()['access_token']}"}
        assert jwt.get_unverified_header(login.json()["access_token"])["kid"] == key_id(new_key)
        for headers in (new_token, old_token):
            assert (await wallet.get(nobody, headers=headers)).status_code == 404
    done = rotating.model_copy(update={"jwt_public_keys": [new_public]})
    async with serve(build_app(done)) as wallet:
        assert (await wallet.get(nobody, headers=new_token)).status_code == 404
        assert (await wallet.get(nobody, headers=old_token)).status_code == 401


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"jwt_private_key": None}, "SHOP_JWT_PRIVATE_KEY"),
        ({"jwt_private_key": "too-short"}, "SHOP_JWT_PRIVATE_KEY"),
        # A valid key whose public half the other services do not know.
        ({"jwt_private_key": generate_private_key()}, "SHOP_JWT_PUBLIC_KEYS"),
        ({"jwt_public_keys": []}, "SHOP_JWT_PUBLIC_KEYS"),
        ({"admin_password": "admin-dev-password"}, "SHOP_ADMIN_PASSWORD"),
        ({"admin_password": "short"}, "SHOP_ADMIN_PASSWORD"),
    ],
)
async def test_the_wallet_refuses_to_start_without_usable_keys(
    infra: Infra, wallet_db: str, namespace: str, changes: dict[str, object], named: str
) -> None:
    with pytest.raises(KeyRefused, match=named):
        async with serve(build_app(settings_for(infra, wallet_db, namespace, **changes))):
            pass
