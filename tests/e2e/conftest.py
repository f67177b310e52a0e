"""The whole shop as real processes behind the nginx gateway, for end-to-end tests.

The stack gets its own Kafka namespace and fresh databases, separate from the in-process service
tests of the same pytest session, so no consumer group is shared with them. Only services whose
`main.py` exists are started, so the harness works while the shop is being built.
"""

import asyncio
import os
import secrets
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from shopdev.stack import SERVICES, ServiceProcess, ServiceSpec, free_port
from shopdev.testing import (
    Infra,
    create_database,
    new_namespace,
    repo_root,
    session_keys,
    unique_name,
)
from shopkit import local_secrets

ADMIN_PASSWORD = secrets.token_urlsafe(18)


def package_of(spec: ServiceSpec) -> str:
    return spec.factory.split(".", 1)[0]


@dataclass(frozen=True)
class User:
    id: str
    email: str
    headers: dict[str, str]


class Stack:
    """What an end-to-end test needs: the gateway client, admin headers, and the processes."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        admin: dict[str, str],
        processes: dict[str, ServiceProcess],
        db_urls: dict[str, str],
        namespace: str,
        infra: Infra,
    ) -> None:
        self.client = client
        self.admin = admin
        # The shop's credential at the payment provider, as the order service sends it.
        self.merchant = {"X-Merchant-Key": session_keys().merchant_key}
        self.processes = processes
        self.namespace = namespace
        self.infra = infra
        self._db_urls = db_urls

    def process(self, name: str) -> ServiceProcess:
        return self.processes[name]

    def db_url(self, name: str) -> str:
        """The asyncpg-style URL (postgresql+asyncpg://) of a service's database."""
        return self._db_urls[name]

    async def _patiently(self, path: str, body: dict[str, str]) -> httpx.Response:
        """POST as a well-behaved client: a 503 (the wallet's password hashing is full when
        many shoppers sign up at once) is retried after its Retry-After, within a deadline."""
        deadline = time.monotonic() + 60
        while True:
            answer = await self.client.post(path, json=body)
            if answer.status_code != 503 or time.monotonic() > deadline:
                return answer
            await asyncio.sleep(float(answer.headers.get("Retry-After", "1")))

    async def new_user(self, *, balance: int = 0, name: str = "Shopper") -> User:
        email = f"{name.lower()}-{uuid.uuid4().hex[:10]}@example.com"
        created = await self._patiently(
            "/api/users", {"name": name, "email": email, "password": "e2e-password"}
        )
        assert created.status_code == 201, created.text
        login = await self._patiently(
            "/api/auth/login", {"email": email, "password": "e2e-password"}
        )
        assert login.status_code == 200, login.text
        user = User(
            id=created.json()["id"],
            email=email,
            headers={"Authorization": f"Bearer {login.json()['access_token']}"},
        )
        if balance:
            charged = await self.client.post(
                f"/api/users/{user.id}/balance/charge",
                json={"amount": balance},
                headers=user.headers,
            )
            assert charged.status_code == 200, charged.text
        return user

    async def balance(self, user: User) -> int:
        response = await self.client.get(f"/api/users/{user.id}/balance", headers=user.headers)
        assert response.status_code == 200, response.text
        return int(response.json()["balance"])

    async def new_product(
        self, *, price: int, stock: int, category: str = "ELECTRONICS", name: str | None = None
    ) -> str:
        body = {
            "name": name or f"Product {uuid.uuid4().hex[:8]}",
            "category": category,
            "price": price,
            "stock": stock,
            "description": "made by an e2e test",
        }
        created = await self.client.post("/api/products", json=body, headers=self.admin)
        assert created.status_code == 201, created.text
        return str(created.json()["id"])

    async def stock(self, product_id: str) -> int:
        response = await self.client.get(f"/api/products/{product_id}")
        assert response.status_code == 200, response.text
        return int(response.json()["stock"])

    async def set_payment_behavior(
        self, *, decline_rate: float = 0.0, timeout_rate: float = 0.0, latency_ms: int = 0
    ) -> None:
        response = await self.client.put(
            "/api/payments/behavior",
            json={
                "decline_rate": decline_rate,
                "timeout_rate": timeout_rate,
                "latency_ms": latency_ms,
            },
            headers=self.admin,
        )
        assert response.status_code == 200, response.text


def _gateway(command: str, env: dict[str, str]) -> None:
    script = repo_root() / "infra" / "local" / "gateway.sh"
    result = subprocess.run(
        ["bash", str(script), command], env={**os.environ, **env}, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise RuntimeError(f"gateway {command} failed:\n{result.stdout}\n{result.stderr}")


@pytest.fixture(scope="session")
async def stack(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    root = repo_root()
    workdir: Path = tmp_path_factory.mktemp("stack")
    specs = [
        s for s in SERVICES if (root / s.directory / "src" / package_of(s) / "main.py").is_file()
    ]
    namespace = await new_namespace(infra, "e")
    urls = dict(
        zip(
            [s.name for s in specs],
            await asyncio.gather(
                *[
                    create_database(infra, root / s.directory, unique_name(s.database))
                    for s in specs
                ]
            ),
            strict=True,
        )
    )
    ports = {s.name: free_port() for s in specs}
    common = {
        "SHOP_KAFKA_BOOTSTRAP": infra.kafka_bootstrap,
        "SHOP_KAFKA_NAMESPACE": namespace,
        "SHOP_ARGON2_TIME_COST": "1",
        "SHOP_ARGON2_MEMORY_KIB": "1024",
        "SHOP_PAYMENT_URL": f"http://127.0.0.1:{ports.get('payment-mock', 0)}",
        "SHOP_LOG_LEVEL": "INFO",
    }
    processes = {
        s.name: ServiceProcess(
            spec=s,
            port=ports[s.name],
            env={
                **common,
                "SHOP_DATABASE_URL": urls[s.name],
                **local_secrets.service_env(s.name, session_keys().credentials(ADMIN_PASSWORD)),
            },
            log_path=workdir / f"{s.name}.log",
        )
        for s in specs
    }
    gateway_port = free_port()
    gateway_env = {
        "SHOP_LOCAL_DIR": str(workdir / "local"),
        "SHOP_GATEWAY_PORT": str(gateway_port),
        **{f"SHOP_{name.split('-')[0].upper()}_PORT": str(port) for name, port in ports.items()},
    }
    try:
        for process in processes.values():
            process.start()
        await asyncio.gather(*[asyncio.to_thread(p.wait_ready) for p in processes.values()])
        _gateway("start", gateway_env)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{gateway_port}", timeout=30
        ) as client:
            login = await client.post(
                "/api/auth/login", json={"email": "admin@shop.local", "password": ADMIN_PASSWORD}
            )
            assert login.status_code == 200, login.text
            admin = {"Authorization": f"Bearer {login.json()['access_token']}"}
            yield Stack(client, admin, processes, urls, namespace, infra)
    finally:
        _gateway("stop", gateway_env)
        for process in processes.values():
            process.stop()


def log_tail(stack: Stack, name: str, lines: int = 40) -> str:
    """The end of a service's log, for assertion messages."""
    path = stack.process(name).log_path
    return (
        "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""
    )


def problem_code(response: httpx.Response) -> Any:
    return response.json().get("code")
