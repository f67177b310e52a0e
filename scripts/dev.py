"""`make dev`: the whole shop on this machine, seeded, until Ctrl-C.

Starts PostgreSQL, Kafka and the nginx gateway with the scripts in infra/local (each is a no-op
when already running), creates the topics, migrates every service's database, starts every
service as a uvicorn process, seeds demo data through the gateway (shopkit.demo, which
compose's seed job runs too) and prints where to look.
Ctrl-C stops every process this run started; data stays in .local/ for the next run.
"""

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from shopkit import demo, local_secrets
from shopkit.kafka_admin import ensure_topics
from shopkit.stack import (
    SERVICES,
    ServiceProcess,
    local_database_url,
    migrate,
    port_of,
    process_env,
)

ROOT = Path(__file__).resolve().parents[1]
LOCAL = Path(os.environ.get("SHOP_LOCAL_DIR", ROOT / ".local"))
INFRA = ROOT / "infra" / "local"
PG = (
    f"{os.environ.get('SHOP_PG_USER', 'postgres')}:{os.environ.get('SHOP_PG_PASSWORD', 'postgres')}"
    f"@127.0.0.1:{os.environ.get('SHOP_PG_PORT', '5432')}"
)
KAFKA = os.environ.get(
    "SHOP_KAFKA_BOOTSTRAP", f"127.0.0.1:{os.environ.get('SHOP_KAFKA_PORT', '9092')}"
)
GATEWAY = f"http://127.0.0.1:{os.environ.get('SHOP_GATEWAY_PORT', '8000')}"


def infra(component: str, command: str) -> int:
    return subprocess.run(["bash", str(INFRA / f"{component}.sh"), command]).returncode


def running(component: str) -> bool:
    return (
        subprocess.run(
            ["bash", str(INFRA / f"{component}.sh"), "status"], capture_output=True
        ).returncode
        == 0
    )


def start_services(credentials: dict[str, str]) -> list[ServiceProcess]:
    processes = []
    for spec in SERVICES:
        url = local_database_url(LOCAL, spec)  # the service's own role, not the superuser
        print(f"[dev] migrating {spec.name} ...", flush=True)
        migrate(ROOT, spec, url)
        process = ServiceProcess(
            spec=spec,
            port=port_of(spec),
            env=process_env(
                spec,
                database_url=url,
                kafka_bootstrap=KAFKA,
                payment_url=f"http://127.0.0.1:{port_of(SERVICES[4])}",
                credentials=credentials,
            ),
            log_path=LOCAL / "logs" / f"{spec.name}.log",
        )
        process.start()
        processes.append(process)
    for process in processes:
        process.wait_ready()
        print(f"[dev] {process.spec.name} ready on {process.url}", flush=True)
    return processes


def banner(credentials: dict[str, str]) -> None:
    print(
        f"""
  The shop is running.
    Gateway           {GATEWAY}/api/...   (try: curl {GATEWAY}/api/products)
    Admin             admin@shop.local / {credentials["SHOP_ADMIN_PASSWORD"]}
    Demo user         demo@shop.local / {credentials["SHOP_DEMO_PASSWORD"]} (balance 500,000 KRW)
    Credentials       {local_secrets.secrets_file(LOCAL)} (keys, merchant key, passwords)
    OpenAPI docs      """
        + "  ".join(f"{s.name}: http://127.0.0.1:{port_of(s)}/docs" for s in SERVICES)
        + """
    Metrics           """
        + "  ".join(f"{s.name}: http://127.0.0.1:{port_of(s)}/metrics" for s in SERVICES)
        + f"""
    Dead letters      make dlq   ({GATEWAY}/api/ops/<service>/dead-letters, admin)
    Logs              {LOCAL / "logs"}/<service>.log
    Kafka             {KAFKA}      PostgreSQL  postgresql://{PG}/<service>
    Database roles    shop_<database>, passwords in {LOCAL / "secrets"}/db-shop_<database>.password
  Ctrl-C stops everything this run started; data stays in {LOCAL}.
""",
        flush=True,
    )


def start_infra(component: str, started: list[str]) -> None:
    """Start `component` unless it runs already; record it in `started` if this run started it."""
    if running(component):
        return
    started.append(component)
    if infra(component, "start") != 0:
        sys.exit(f"[dev] {component} failed to start")


def main() -> None:
    # What this run starts, it stops; decided as each part starts, not up front, so that a part
    # another run was still stopping when this one began is counted as ours.
    started_infra: list[str] = []
    processes: list[ServiceProcess] = []
    stop = False

    def request_stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    credentials = local_secrets.ensure(LOCAL)
    try:
        for component in ("postgres", "kafka"):
            start_infra(component, started_infra)
        if infra("postgres", "databases") != 0:  # a server started before: roles may be missing
            sys.exit("[dev] could not create the service databases and roles")
        asyncio.run(ensure_topics(KAFKA))
        processes = start_services(credentials)
        start_infra("gateway", started_infra)
        demo.seed(
            GATEWAY,
            admin_password=credentials["SHOP_ADMIN_PASSWORD"],
            demo_password=credentials["SHOP_DEMO_PASSWORD"],
        )
        banner(credentials)
        while not stop:
            for process in processes:
                if process.process and process.process.poll() is not None:
                    print(f"[dev] {process.spec.name} exited; see {process.log_path}", flush=True)
                    stop = True
            time.sleep(0.5)
    finally:
        print("\n[dev] stopping ...", flush=True)
        for process in processes:
            process.stop()
        for component in reversed(started_infra):
            infra(component, "stop")


if __name__ == "__main__":
    main()
