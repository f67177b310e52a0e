"""No well-known secret: nothing written in the repository configures a service, a service with
a bad key exits with a clear error, and compose names every credential it lacks."""

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from shopdev.stack import SERVICES
from shopdev.testing import repo_root, session_keys
from shopkit import local_secrets
from shopkit.keys import KeyRefused, check_secret, key_id, load_private_key, load_public_keys

from .published import repository_secrets

OLD_DEFAULT = "dev-only-secret-change-me-0123456789abcdef"
RFC_8037_PRIVATE = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
SECRETS = (
    local_secrets.PRIVATE_KEY,
    local_secrets.PUBLIC_KEYS,
    local_secrets.MERCHANT_KEY,
    local_secrets.ADMIN_PASSWORD,
)


def test_the_scan_sees_the_secrets_the_repository_has_held() -> None:
    found = set(repository_secrets())
    assert {OLD_DEFAULT, "admin-dev-password", RFC_8037_PRIVATE} <= found


@pytest.mark.parametrize("text", repository_secrets())
def test_no_string_in_the_repository_can_serve_as_a_key(text: str) -> None:
    with pytest.raises(KeyRefused):
        load_public_keys([text], variable="SHOP_JWT_PUBLIC_KEYS")
    with pytest.raises(KeyRefused):
        load_private_key(text, variable="SHOP_JWT_PRIVATE_KEY")
    with pytest.raises(KeyRefused):
        check_secret(text, variable="SHOP_MERCHANT_KEY")


def start_env(**env: str) -> dict[str, str]:
    """The environment minus every credential, plus `env`."""
    base = {k: v for k, v in os.environ.items() if k not in SECRETS}
    return base | {"SHOP_LOG_JSON": "false"} | env


async def exit_of(service: str, env: dict[str, str]) -> tuple[int, str]:
    """Start one service as `make dev` does; its exit code and output (it must not start)."""
    spec = next(s for s in SERVICES if s.name == service)
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "uvicorn", "--factory", spec.factory, "--port", "0"),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    except TimeoutError:
        process.kill()
        raise AssertionError(f"{service} started (or hung) with a refused key") from None
    return process.returncode or 0, output.decode(errors="replace")


async def test_a_service_with_a_repository_or_short_key_exits_with_a_clear_error() -> None:
    keys = session_keys()
    good = json.dumps(keys.public_keys)
    cases = [
        ("catalog", {}, "SHOP_JWT_PUBLIC_KEYS is not set"),
        ("catalog", {"SHOP_JWT_PUBLIC_KEYS": json.dumps([OLD_DEFAULT])}, "SHOP_JWT_PUBLIC_KEYS"),
        ("analytics", {"SHOP_JWT_PUBLIC_KEYS": '["short"]'}, "SHOP_JWT_PUBLIC_KEYS"),
        (
            "payment-mock",
            {"SHOP_JWT_PUBLIC_KEYS": good, "SHOP_MERCHANT_KEY": OLD_DEFAULT},
            "SHOP_MERCHANT_KEY is a published",
        ),
        (
            "order",
            {"SHOP_JWT_PUBLIC_KEYS": good, "SHOP_MERCHANT_KEY": "too-short"},
            "SHOP_MERCHANT_KEY is too short",
        ),
        (
            "wallet",
            {"SHOP_JWT_PUBLIC_KEYS": good, "SHOP_JWT_PRIVATE_KEY": RFC_8037_PRIVATE},
            "SHOP_JWT_PRIVATE_KEY is not a readable private key",
        ),
    ]
    results = await asyncio.gather(*(exit_of(name, start_env(**env)) for name, env, _ in cases))
    for (name, env, message), (code, output) in zip(cases, results, strict=True):
        assert code != 0, f"{name} started with {env}"
        assert message in output, f"{name}: no clear error for {env}:\n{output[-2000:]}"
        assert OLD_DEFAULT not in output and RFC_8037_PRIVATE not in output, "key echoed"


def compose() -> dict[str, Any]:
    return yaml.safe_load((repo_root() / "docker-compose.yml").read_text())


REQUIRED = re.compile(r"^\$\{(\w+):\?([^}]*)\}$")


def test_compose_requires_every_credential_and_names_it() -> None:
    services = compose()["services"]
    holders: dict[str, set[str]] = {name: set() for name in SECRETS}
    for name, service in services.items():
        for variable, value in (service.get("environment") or {}).items():
            if variable not in SECRETS:
                continue
            required = REQUIRED.match(str(value))
            assert required, f"{name}: {variable} must be ${{{variable}:?...}}, not {value!r}"
            assert required.group(1) == variable and variable in required.group(2), value
            holders[variable].add(name)
    shop = {s.name for s in SERVICES}
    assert holders[local_secrets.PUBLIC_KEYS] == shop
    # Only the wallet can sign; only the order service and the provider know the merchant key;
    # the admin's password is the wallet's and the seed job's (it logs in to make demo data).
    assert holders[local_secrets.PRIVATE_KEY] == {"wallet"}
    assert holders[local_secrets.ADMIN_PASSWORD] == {"wallet", "seed"}
    assert holders[local_secrets.MERCHANT_KEY] == {"order", "payment-mock"}
    text = (repo_root() / "docker-compose.yml").read_text()
    assert "JWT_SECRET" not in text
    assert not [name for name in SECRETS if f"${{{name}:-" in text], "a credential has a default"


def test_local_secrets_match_what_compose_and_the_services_ask_for(tmp_path: Path) -> None:
    values = local_secrets.ensure(tmp_path)
    file = local_secrets.secrets_file(tmp_path)
    assert file.stat().st_mode & 0o077 == 0, "readable by others"
    assert set(SECRETS) <= set(values)
    # Everything compose requires is in the file `make up` hands it.
    required = re.findall(r"\$\{(\w+):\?", (repo_root() / "docker-compose.yml").read_text())
    assert set(required) <= set(values), "make up would refuse to start"
    for name in {s.name for s in SERVICES}:
        env = local_secrets.service_env(name, values)
        assert (local_secrets.PRIVATE_KEY in env) == (name == "wallet")
        assert (local_secrets.MERCHANT_KEY in env) == (name in ("order", "payment-mock"))
    # A second start keeps them; a rotation signs with a new key and still lists the old one.
    assert local_secrets.ensure(tmp_path) == values
    rotated = local_secrets.rotate(tmp_path)
    old_public = json.loads(values[local_secrets.PUBLIC_KEYS])[0]
    assert rotated[local_secrets.PRIVATE_KEY] != values[local_secrets.PRIVATE_KEY]
    assert json.loads(rotated[local_secrets.PUBLIC_KEYS])[1] == old_public
    assert len(json.loads(local_secrets.rotate(tmp_path)[local_secrets.PUBLIC_KEYS])) == 2


def test_an_earlier_ed25519_signing_key_is_replaced_by_an_rsa_pair(tmp_path: Path) -> None:
    local_secrets.write(
        local_secrets.secrets_file(tmp_path),
        {local_secrets.PRIVATE_KEY: "A" * 43, local_secrets.PUBLIC_KEYS: '["B"]'},
    )
    values = local_secrets.ensure(tmp_path)
    key = load_private_key(values[local_secrets.PRIVATE_KEY], variable="V")
    assert list(load_public_keys(json.loads(values[local_secrets.PUBLIC_KEYS]), variable="V")) == [
        key_id(key.public_key())
    ]


def test_docker_compose_config_names_the_missing_variables(tmp_path: Path) -> None:
    """With the Docker CLI's compose plugin at hand (no engine needed), ask compose itself."""
    docker = shutil.which("docker")
    if (
        docker is None
        or subprocess.run([docker, "compose", "version"], capture_output=True).returncode
    ):
        pytest.skip("no docker compose CLI on this machine (the static check above covers it)")
    done = subprocess.run(
        [docker, "compose", "-f", str(repo_root() / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        env=start_env(),
        cwd=tmp_path,
    )
    assert done.returncode != 0
    assert any(variable in done.stderr for variable in SECRETS), done.stderr
