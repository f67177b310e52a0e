"""`make dev`: the whole shop on this machine, seeded, until Ctrl-C.

Starts PostgreSQL, Kafka and the nginx gateway with the scripts in infra/local (each is a no-op
when already running), creates the topics, migrates every service's database once, starts
every service as one uvicorn process per replica (SHOP_REPLICAS, or SHOP_<NAME>_REPLICAS for
one service; `make dev REPLICAS=2`) with the gateway balancing across them, seeds demo data
through the gateway (shopkit.demo, which compose's seed job runs too) and prints where to look.
Ctrl-C stops every process this run started; data stays in .local/ for the next run.
"""

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from shopdev.stack import (
    SERVICES,
    ServiceProcess,
    local_database_url,
    migrate,
    ports_env,
    process_env,
    replica_ports,
)
from shopkit import demo, local_secrets
from shopkit.kafka_admin import ensure_topics

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


def payment_url() -> str:
    """Where the order service reaches the provider: its one replica, or the gateway when the
    provider runs several (the gateway then balances the merchant API like an external one's
    load balancer would)."""
    ports = replica_ports(SERVICES[4])
    return GATEWAY if len(ports) > 1 else f"http://127.0.0.1:{ports[0]}"


def start_services(credentials: dict[str, str]) -> list[ServiceProcess]:
    processes = []
    for spec in SERVICES:
        url = local_database_url(LOCAL, spec)  # the service's own role, not the superuser
        print(f"[dev] migrating {spec.name} ...", flush=True)
        migrate(ROOT, spec, url)  # once, before any replica starts: replicas never migrate
        env = process_env(
            spec,
            database_url=url,
            kafka_bootstrap=KAFKA,
            payment_url=payment_url(),
            credentials=credentials,
        )
        for replica, port in enumerate(replica_ports(spec), start=1):
            suffix = "" if replica == 1 else f"-{replica}"
            process = ServiceProcess(
                spec=spec,
                port=port,
                env=env,
                log_path=LOCAL / "logs" / f"{spec.name}{suffix}.log",
                replica=replica,
            )
            process.start()
            processes.append(process)
    for process in processes:
        process.wait_ready()
        print(f"[dev] {process.name} ready on {process.url}", flush=True)
    return processes


def banner(credentials: dict[str, str]) -> None:
    print(
        f"""
  The shop is running.
    Gateway           {GATEWAY}/api/...   (try: curl {GATEWAY}/api/products)
    Admin             admin@shop.local / {credentials["SHOP_ADMIN_PASSWORD"]}
    Demo user         demo@shop.local / {credentials["SHOP_DEMO_PASSWORD"]} (balance 500,000 KRW)
    Credentials       {local_secrets.secrets_file(LOCAL)} (keys, merchant key, passwords)
    API docs          {GATEWAY}/api/docs   (Swagger UI: log in, Authorize, Try it out)
                      {GATEWAY}/api/openapi.json, {GATEWAY}/api/asyncapi/<service>
    Ops console       {GATEWAY}/console/   (log in as the admin)
    Metrics           """
        + "  ".join(f"{s.name}: http://127.0.0.1:{replica_ports(s)[0]}/metrics" for s in SERVICES)
        + f"""   (service ports, not the gateway)
    Dead letters      make dlq   ({GATEWAY}/api/ops/<service>/dead-letters, admin)
    Replicas          """
        + "  ".join(f"{s.name} x{len(replica_ports(s))}" for s in SERVICES)
        + f"""   (make dev REPLICAS=2; README "Replicas")
    Logs              {LOCAL / "logs"}/<service>.log (<service>-2.log, ... for more replicas)
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
        os.environ.update(ports_env({s.name: replica_ports(s) for s in SERVICES}))
        if running("gateway"):  # started before, perhaps with other replicas: list these
            if infra("gateway", "reload") != 0:
                sys.exit("[dev] the gateway did not take the new upstreams")
        else:
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
                    print(f"[dev] {process.name} exited; see {process.log_path}", flush=True)
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
