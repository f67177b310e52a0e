"""The coupon benchmark's own stack: a fresh database and namespace, the coupon service as
`uvicorn --workers N` and the nginx gateway in front of it; stopped on exit."""

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
from coupon_client import signer_of
from local_infra import admin_execute, fetch_row

from shopdev.stack import SERVICES, free_port, migrate
from shopkit.auth import TokenSigner
from shopkit.kafka_admin import ensure_topics
from shopkit.keys import generate_private_key, public_text

ROOT = Path(__file__).resolve().parents[1]
COUPON = next(s for s in SERVICES if s.name == "coupon")


class OwnStack:
    """A fresh database, namespace, coupon service (N workers) and gateway; stopped on exit."""

    def __init__(
        self,
        pg_admin_url: str,
        kafka: str,
        workers: int,
        upstream_keepalive: int | None,
        loop: str,
    ) -> None:
        self.pg_admin_url, self.kafka, self.workers = pg_admin_url, kafka, workers
        self.loop = loop
        self.upstream_keepalive = upstream_keepalive
        self.db_name = f"bench_coupon_{uuid.uuid4().hex[:8]}"
        self.dir = Path(tempfile.mkdtemp(prefix="coupon-bench-"))
        self.port, self.gateway_port = free_port(), free_port()
        self.private_key = generate_private_key()  # this run's wallet key, written nowhere
        self.process: subprocess.Popen[bytes] | None = None
        base = pg_admin_url.rsplit("/", 1)[0].split("://", 1)[1]
        self.database_url = f"postgresql+asyncpg://{base}/{self.db_name}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def signer(self) -> TokenSigner:
        return signer_of(self.private_key)

    def _gateway_env(self) -> dict[str, str]:
        ports = {f"SHOP_{s.name.split('-')[0].upper()}_PORT": str(free_port()) for s in SERVICES}
        return {
            **os.environ,
            **ports,
            "SHOP_COUPON_PORT": str(self.port),
            "SHOP_GATEWAY_PORT": str(self.gateway_port),
            "SHOP_LOCAL_DIR": str(self.dir),
            "SHOP_RATE_LIMITS": "off",  # a load test from one address (see the docstring)
        }

    async def __aenter__(self) -> "OwnStack":
        try:
            return await self._start()
        except BaseException:
            await self.__aexit__()
            raise

    async def _start(self) -> "OwnStack":
        await admin_execute(self.pg_admin_url, f'CREATE DATABASE "{self.db_name}"')
        await asyncio.to_thread(migrate, ROOT, COUPON, self.database_url)
        namespace = f"b{uuid.uuid4().hex[:8]}."
        await ensure_topics(self.kafka, namespace)
        env = {
            **os.environ,
            "SHOP_SERVICE_NAME": "coupon",
            "SHOP_DATABASE_URL": self.database_url,
            "SHOP_KAFKA_BOOTSTRAP": self.kafka,
            "SHOP_KAFKA_NAMESPACE": namespace,
            "SHOP_JWT_PUBLIC_KEYS": orjson.dumps([public_text(self.signer().public_key)]).decode(),
            "SHOP_LOG_LEVEL": "WARNING",
            "SHOP_RATE_LIMITS": "off",
        }
        log = (self.dir / "coupon.log").open("ab")
        command = [
            *(sys.executable, "-m", "uvicorn", "--factory", COUPON.factory, "--host", "127.0.0.1"),
            *("--port", str(self.port), "--workers", str(self.workers), "--no-access-log"),
            *("--backlog", "4096", "--timeout-graceful-shutdown", "5", "--loop", self.loop),
        ]
        self.process = await asyncio.to_thread(
            subprocess.Popen, command, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        await self._wait_ready()
        gateway = ROOT / "infra" / "local" / "gateway.sh"
        await asyncio.to_thread(
            subprocess.run, ["bash", str(gateway), "start"], env=self._gateway_env(), check=True
        )
        if self.upstream_keepalive:
            await self._raise_upstream_keepalive(self.upstream_keepalive)
        return self

    async def _raise_upstream_keepalive(self, keepalive: int) -> None:
        """An experiment: the gateway's coupon upstream keeps more idle connections open."""
        conf = self.dir / "nginx" / "nginx.conf"
        text = conf.read_text()
        old = f"server 127.0.0.1:{self.port};    keepalive 32;"
        assert old in text, "the gateway template changed; update the bench"
        text = text.replace(old, f"server 127.0.0.1:{self.port}; keepalive {keepalive};")
        text = text.replace(
            "$upstream_response_time", "$upstream_connect_time $upstream_response_time"
        )
        conf.write_text(text)
        pid = int((self.dir / "nginx" / "logs" / "nginx.pid").read_text())
        os.kill(pid, 1)  # SIGHUP: nginx re-reads its configuration
        await asyncio.sleep(1.0)

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    raise RuntimeError(f"coupon exited; see {self.dir / 'coupon.log'}")
                try:
                    ready = await client.get(f"http://127.0.0.1:{self.port}/ready", timeout=2)
                    if ready.status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
        raise RuntimeError("coupon not ready in 60 s")

    async def counts(self, coupon_id: str) -> dict[str, Any]:
        return await fetch_row(
            self.database_url,
            "SELECT c.issued_quantity, l.accepted,"
            " (SELECT count(*) FROM user_coupons u WHERE u.coupon_id = c.id"
            "  AND u.status = 'ISSUED') AS issued_rows,"
            " (SELECT count(DISTINCT user_id) FROM user_coupons u WHERE u.coupon_id = c.id"
            "  AND u.status = 'ISSUED') AS issued_users,"
            " (SELECT count(*) FROM user_coupons u WHERE u.coupon_id = c.id"
            "  AND u.status = 'PENDING') AS pending"
            " FROM coupons c JOIN coupon_lines l ON l.coupon_id = c.id WHERE c.id = $1",
            coupon_id,
        )

    async def __aexit__(self, *_: object) -> None:
        gateway = ROOT / "infra" / "local" / "gateway.sh"
        await asyncio.to_thread(
            subprocess.run, ["bash", str(gateway), "stop"], env=self._gateway_env(), check=False
        )
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        await admin_execute(
            self.pg_admin_url, f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)'
        )
        if os.environ.get("COUPON_BENCH_KEEP"):
            shutil.copytree(self.dir, os.environ["COUPON_BENCH_KEEP"], dirs_exist_ok=True)
        if (self.dir / "coupon.log").exists():
            shutil.copy(self.dir / "coupon.log", Path(tempfile.gettempdir()) / "coupon-bench.log")
        shutil.rmtree(self.dir, ignore_errors=True)
