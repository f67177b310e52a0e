"""What the storm benchmark runs: a fresh database and namespace, the coupon service and one
nginx gateway per configuration under test; stopped at the end."""

import argparse
import asyncio
import os
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from coupon_client import signer_of
from local_infra import admin_execute, fetch_row

from shopdev.stack import SERVICES, ServiceProcess, free_port, migrate
from shopkit.kafka_admin import ensure_topics
from shopkit.keys import generate_private_key, public_text

ROOT = Path(__file__).resolve().parents[1]
COUPON = next(s for s in SERVICES if s.name == "coupon")
GATEWAY = ROOT / "infra" / "local" / "gateway.sh"
TEMPLATE = ROOT / "infra" / "gateway" / "nginx.conf.template"


@dataclass
class Gateway:
    name: str
    template: Path
    coupon_port: int
    dir: Path
    port: int = field(default_factory=free_port)
    # Only the coupon service runs: the other upstreams point at ports nothing listens on.
    others: dict[str, str] = field(
        default_factory=lambda: {
            f"SHOP_{s.name.split('-')[0].upper()}_PORT": str(free_port()) for s in SERVICES
        }
    )

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            **self.others,
            "SHOP_COUPON_PORT": str(self.coupon_port),
            "SHOP_GATEWAY_PORT": str(self.port),
            "SHOP_LOCAL_DIR": str(self.dir),
            "SHOP_GATEWAY_TEMPLATE": str(self.template),
            "SHOP_RATE_LIMITS": "off",  # a load test from one address (see the docstring)
        }

    def run(self, command: str) -> None:
        subprocess.run(["bash", str(GATEWAY), command], env=self.env(), check=command != "stop")

    def listen_line(self) -> str:
        conf = (self.dir / "nginx" / "nginx.conf").read_text()
        return next(line.strip() for line in conf.splitlines() if line.strip().startswith("listen"))


def before_template(spec: str, into: Path) -> Path:
    """A template file as given, or the gateway template at a git revision."""
    if Path(spec).is_file():
        return Path(spec)
    shown = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{spec}:infra/gateway/nginx.conf.template"],
        capture_output=True,
        text=True,
    )
    if shown.returncode != 0:
        raise SystemExit(
            f"no gateway template at {spec!r} (a file or a git revision): {shown.stderr}"
        )
    into.write_text(shown.stdout)
    return into


class Stack:
    """A fresh database and namespace, the coupon service and the gateways; stopped on exit."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.db_name = f"bench_storm_{uuid.uuid4().hex[:8]}"
        self.dir = Path(tempfile.mkdtemp(prefix="storm-bench-"))
        self.private_key = generate_private_key()  # this run's wallet key, written nowhere
        base = args.pg.rsplit("/", 1)[0].split("://", 1)[1]
        self.database_url = f"postgresql+asyncpg://{base}/{self.db_name}"
        self.service: ServiceProcess | None = None
        self.gateways: list[Gateway] = []

    async def start(self) -> None:
        await admin_execute(self.args.pg, f'CREATE DATABASE "{self.db_name}"')
        await asyncio.to_thread(migrate, ROOT, COUPON, self.database_url)
        namespace = f"s{uuid.uuid4().hex[:8]}."
        await ensure_topics(self.args.kafka, namespace)
        public = public_text(signer_of(self.private_key).public_key)
        os.environ["SHOP_COUPON_WORKERS"] = str(self.args.workers)  # read by shopdev.stack
        self.service = ServiceProcess(
            COUPON,
            free_port(),
            {
                "SHOP_DATABASE_URL": self.database_url,
                "SHOP_KAFKA_BOOTSTRAP": self.args.kafka,
                "SHOP_KAFKA_NAMESPACE": namespace,
                "SHOP_JWT_PUBLIC_KEYS": orjson.dumps([public]).decode(),
                "SHOP_LOG_LEVEL": "WARNING",
                "SHOP_RATE_LIMITS": "off",
            },
            self.dir / "coupon.log",
        )
        self.service.start()
        await asyncio.to_thread(self.service.wait_ready, 120)
        variants = [("after", TEMPLATE)]
        if not self.args.only_after:
            variants.insert(
                0, ("before", before_template(self.args.before, self.dir / "before.template"))
            )
        for name, template in variants:
            gateway = Gateway(name, template, self.service.port, self.dir / name)
            self.gateways.append(gateway)
            await asyncio.to_thread(gateway.run, "start")

    async def counts(self, coupon_id: str) -> dict[str, int]:
        return await fetch_row(
            self.database_url,
            "SELECT c.issued_quantity,"
            " (SELECT count(DISTINCT user_id) FROM user_coupons u WHERE u.coupon_id = c.id"
            "  AND u.status = 'ISSUED') AS issued_users,"
            " (SELECT count(*) FROM user_coupons u WHERE u.coupon_id = c.id"
            "  AND u.status = 'PENDING') AS pending"
            " FROM coupons c WHERE c.id = $1",
            coupon_id,
        )

    async def stop(self) -> None:
        for gateway in self.gateways:
            await asyncio.to_thread(gateway.run, "stop")
        if self.service is not None:
            await asyncio.to_thread(self.service.stop)
        await admin_execute(self.args.pg, f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
        if os.environ.get("STORM_BENCH_KEEP"):
            shutil.copytree(self.dir, os.environ["STORM_BENCH_KEEP"], dirs_exist_ok=True)
        shutil.rmtree(self.dir, ignore_errors=True)
