"""The Helm chart (deploy/helm/shop): rendered by Helm itself with two value sets, every object
valid against the Kubernetes schemas (kubernetes-validate, offline), `helm lint` clean, and the
same shop as the local stack and compose: services, commands, variables, roles, routes.

Helm is the Go module helm.sh/helm/v4, built by `make install` into .local/bin. The tests skip
only where Go is absent (nothing could build it); with Go and no helm they fail."""

import copy
import functools
import importlib
import importlib.util
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from shopdev.stack import BACKLOG, KEEP_ALIVE_S, SERVICES, ServiceSpec, database_role, process_env
from shopdev.testing import repo_root
from shopkit import demo, local_secrets
from shopkit.kafka_admin import topic_configs

ROOT = repo_root()
CHART = ROOT / "deploy" / "helm" / "shop"
HELM = ROOT / ".local" / "bin" / "helm"
RELEASE = "shop"
SECRET = "shop-secrets"
VALUE_SETS = ("default", "scale")
# The oldest Kubernetes the chart claims (Chart.yaml kubeVersion) and the newest with schemas.
KUBE_VERSIONS = ("1.30.0", kubernetes_validate.utils.latest_version())
LOCATION = re.compile(r"^\s*location\s+[^{]+\{[^}]*\}", re.MULTILINE)
UPSTREAM = re.compile(r"upstream\s+(\w+)\s*\{\s*server\s+([^;\s]+)[^;]*;")
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?")
# 32+ characters of base64/hex with digits in them: a key, a token or a generated password
RANDOM_LOOKING = re.compile(r"(?<![\w/.-])(?=[\w+/-]*\d[\w+/-]*\d)[\w+/-]{32,}={0,2}(?![\w/.-])")
# A connection per process besides the pool: the relay's lock, LISTEN (order and coupon).
EXTRA_CONNECTIONS = 2


def helm_binary() -> Path:
    if HELM.is_file():
        return HELM
    if not (shutil.which("go") or Path("/usr/local/go/bin/go").is_file()):
        pytest.skip("no Go on this machine, so no helm (make install builds it from its module)")
    pytest.fail(f"no {HELM}: run `make install` (it builds helm from helm.sh/helm/v4)")


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(helm_binary()), *args], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    if check and result.returncode != 0:
        pytest.fail(f"helm {' '.join(args)}:\n{result.stderr}")
    return result


def values_file(name: str) -> Path:
    return CHART / "ci" / f"{name}-values.yaml"


@functools.cache
def _render(value_set: str, extra: tuple[str, ...] = ()) -> str:
    return helm(
        "template",
        RELEASE,
        str(CHART),
        "--namespace",
        "shop",
        "-f",
        str(values_file(value_set)),
        *extra,
    ).stdout


class StrictLoader(yaml.SafeLoader):
    """YAML as the API server's clients read it: a key twice in one mapping is an error (PyYAML
    would keep the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        keys = [self.construct_object(key, deep=deep) for key, _ in node.value]
        twice = {key for key in keys if keys.count(key) > 1}
        if twice:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate keys {twice}", node.start_mark
            )
        return super().construct_mapping(node, deep=deep)


def render(value_set: str = "default", *extra: str) -> list[dict[str, Any]]:
    """Every object, hooks included, as Helm would send them to the cluster."""
    documents = yaml.load_all(_render(value_set, extra), Loader=StrictLoader)
    return copy.deepcopy([d for d in documents if d])


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind} {name}: {len(matches)} rendered"
    return matches[0]


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"]["template"]["spec"]
    return spec


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def component(spec: ServiceSpec) -> str:
    return f"{RELEASE}-{spec.name}"


# -- Helm and the schemas --------------------------------------------------------------------


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_helm_lint_finds_nothing(value_set: str) -> None:
    result = helm("lint", "--strict", str(CHART), "-f", str(values_file(value_set)))
    assert "0 chart(s) failed" in result.stdout


def test_helm_is_the_version_make_install_builds() -> None:
    pinned = re.search(
        r"^HELM_VERSION=(v[\d.]+)$", (ROOT / "infra/local/install.sh").read_text(), re.M
    )
    assert pinned
    assert helm("version", "--template", "{{ .Version }}").stdout.startswith(
        pinned.group(1).rsplit(".", 1)[0]
    )


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_every_object_is_valid_against_the_kubernetes_schemas(
    value_set: str, kube_version: str
) -> None:
    objects = render(value_set, "--kube-version", kube_version)
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "Service", "PodDisruptionBudget", "Job", "ConfigMap"} <= kinds
    for obj in objects:
        # strict: a misspelt or misplaced field is an error, not silently dropped
        kubernetes_validate.validate(obj, kube_version, strict=True)


def test_the_schema_check_catches_a_broken_object() -> None:
    deployment = find(render(), "Deployment", "shop-order")
    broken = copy.deepcopy(deployment)
    broken["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBE_VERSIONS[-1], strict=True)
    misplaced = copy.deepcopy(deployment)
    pod_spec(misplaced)["containers"][0]["readinesProbe"] = {"httpGet": {"path": "/ready"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(misplaced, KUBE_VERSIONS[-1], strict=True)


def test_the_scale_set_autoscales_every_service_and_fixes_no_replica_count() -> None:
    objects = render("scale")
    for spec in SERVICES:
        hpa = find(objects, "HorizontalPodAutoscaler", component(spec))
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": component(spec),
        }
        assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 4)
        # a replicas field would fight the autoscaler at every upgrade
        assert "replicas" not in find(objects, "Deployment", component(spec))["spec"]
    assert not [o for o in render() if o["kind"] == "HorizontalPodAutoscaler"]


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("serviceDefaults.replicas=3", "'replicas' not allowed"),  # replicaCount
        ("services.wallet.pool.size=0", "minimum"),
        ("services.walet.enabled=true", "walet"),
        ("config.rateLimits=maybe", "rateLimits"),
    ],
)
def test_a_misspelt_or_impossible_value_is_refused(setting: str, complaint: str) -> None:
    result = helm(
        "template",
        RELEASE,
        str(CHART),
        "-f",
        str(values_file("default")),
        "--set",
        setting,
        check=False,
    )
    assert result.returncode != 0 and complaint in result.stderr, result.stderr


# -- the same shop as the local stack --------------------------------------------------------


@pytest.mark.parametrize("spec", SERVICES, ids=lambda s: s.name)
def test_a_service_runs_its_factory_behind_a_service_and_a_disruption_budget(
    spec: ServiceSpec,
) -> None:
    objects = render()
    deployment = find(objects, "Deployment", component(spec))
    assert deployment["spec"]["replicas"] == 2
    container = pod_spec(deployment)["containers"][0]
    assert container["workingDir"] == f"/app/{spec.directory}"
    command = container["command"]
    assert command[:3] == ["uvicorn", "--factory", spec.factory]
    assert command[command.index("--port") + 1] == "8000"
    assert {"--no-access-log", "--timeout-graceful-shutdown"} <= set(command)
    assert command[command.index("--timeout-keep-alive") + 1] == str(KEEP_ALIVE_S)
    assert command[command.index("--backlog") + 1] == str(BACKLOG)
    assert "alembic" not in " ".join(command), "replicas must not migrate"
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = find(objects, "Service", component(spec))
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["port"] == 8000
    budget = find(objects, "PodDisruptionBudget", component(spec))
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert budget["spec"]["maxUnavailable"] == 1


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_a_selector_selects_only_its_own_deployments_pods(value_set: str) -> None:
    objects = render(value_set)
    pods = {
        (o["kind"], o["metadata"]["name"]): o["spec"]["template"]["metadata"]["labels"]
        for o in objects
        if o["kind"] in ("Deployment", "Job")
    }
    for obj in objects:
        if obj["kind"] == "Service":
            selector = obj["spec"]["selector"]
        elif obj["kind"] in ("PodDisruptionBudget", "Deployment"):
            selector = obj["spec"]["selector"]["matchLabels"]
        elif obj["kind"] == "NetworkPolicy":
            selector = obj["spec"]["podSelector"]["matchLabels"]
        else:
            continue
        # a migration job's pod behind a Service would get requests it cannot answer
        selected = [pod for pod, labels in pods.items() if selector.items() <= labels.items()]
        assert selected == [("Deployment", obj["metadata"]["name"])], obj["metadata"]["name"]


@pytest.mark.parametrize("spec", SERVICES, ids=lambda s: s.name)
def test_probes_ready_on_dependencies_alive_without_them(spec: ServiceSpec) -> None:
    container = pod_spec(find(render(), "Deployment", component(spec)))["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    # /health answers while the database is away: an outage must not restart every pod
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["startupProbe"]["httpGet"]["path"] == "/health"
    assert container["resources"]["requests"]["cpu"], "an HPA needs a CPU request"
    assert container["resources"]["limits"]["memory"]


@pytest.mark.parametrize("spec", SERVICES, ids=lambda s: s.name)
def test_a_service_gets_its_settings_and_only_its_part_of_the_credentials(
    spec: ServiceSpec,
) -> None:
    container = pod_spec(find(render("scale"), "Deployment", component(spec)))["containers"][0]
    env = env_of(container)
    assert env["SHOP_SERVICE_NAME"] == spec.name
    assert env["SHOP_KAFKA_BOOTSTRAP"] == "shop-kafka-bootstrap.kafka:9092"
    assert env["SHOP_PAYMENT_URL"] == "http://shop-payment-mock:8000"
    package = spec.factory.split(".")[0]
    fields = {
        f"SHOP_{name.upper()}"
        for name in importlib.import_module(f"{package}.settings").Settings.model_fields
    }
    credentials = dict.fromkeys(
        (
            local_secrets.PRIVATE_KEY,
            local_secrets.PUBLIC_KEYS,
            local_secrets.MERCHANT_KEY,
            local_secrets.ADMIN_PASSWORD,
        ),
        "x",
    )
    # what `make dev` gives every process (SHOP_PAYMENT_URL too), as compose does
    local = process_env(
        spec, database_url="", kafka_bootstrap="", payment_url="", credentials=credentials
    )
    assert set(local) <= set(env), "a variable make dev sets is missing"
    unknown = {name for name in env if name.startswith("SHOP_")} - fields - set(local)
    assert not unknown, f"{spec.name} would ignore {unknown} (no such setting)"
    expected = set(local_secrets.service_env(spec.name, credentials))
    assert set(env) & set(credentials) == expected
    for name in expected:
        assert env[name] == {"secretKeyRef": {"name": SECRET, "key": name}}


@pytest.mark.parametrize("spec", SERVICES, ids=lambda s: s.name)
def test_a_service_and_its_migration_job_connect_as_its_own_role(spec: ServiceSpec) -> None:
    objects = render()
    service = env_of(pod_spec(find(objects, "Deployment", component(spec)))["containers"][0])
    job = find(objects, "Job", f"{component(spec)}-migrate")
    job_container = pod_spec(job)["containers"][0]
    role, database = database_role(spec), spec.database
    assert service["SHOP_DATABASE_URL"] == (
        f"postgresql+asyncpg://{role}:$(DATABASE_PASSWORD)@shop-pg-rw.db:5432/{database}"
    )
    password_key = f"SHOP_{database.upper()}_DB_PASSWORD"
    assert password_key in local_secrets.COMPOSE_DB_PASSWORDS  # the name compose uses
    assert service["DATABASE_PASSWORD"] == {"secretKeyRef": {"name": SECRET, "key": password_key}}
    # $(VAR) expands only a variable defined earlier in the list
    names = [
        e["name"]
        for e in pod_spec(find(objects, "Deployment", component(spec)))["containers"][0]["env"]
    ]
    assert names.index("DATABASE_PASSWORD") < names.index("SHOP_DATABASE_URL")
    assert env_of(job_container) == {
        "SHOP_SERVICE_NAME": spec.name,
        "DATABASE_PASSWORD": service["DATABASE_PASSWORD"],
        "SHOP_DATABASE_URL": service["SHOP_DATABASE_URL"],
    }


def test_a_role_password_may_come_from_its_own_secret() -> None:
    payment = next(s for s in SERVICES if s.name == "payment-mock")
    env = env_of(pod_spec(find(render("scale"), "Deployment", component(payment)))["containers"][0])
    assert env["DATABASE_PASSWORD"] == {
        "secretKeyRef": {"name": "shop-pg-payment", "key": "password"}
    }


@pytest.mark.parametrize("spec", SERVICES, ids=lambda s: s.name)
def test_migrations_run_once_as_hook_jobs_after_the_topics(spec: ServiceSpec) -> None:
    objects = render()
    job = find(objects, "Job", f"{component(spec)}-migrate")
    topics = find(objects, "Job", "shop-topics")
    for hook in (job, topics):
        annotations = hook["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert pod_spec(hook)["restartPolicy"] == "Never"
    weight = int(job["metadata"]["annotations"]["helm.sh/hook-weight"])
    assert int(topics["metadata"]["annotations"]["helm.sh/hook-weight"]) < weight
    container = pod_spec(job)["containers"][0]
    assert container["command"] == ["alembic", "upgrade", "head"]
    service = pod_spec(find(objects, "Deployment", component(spec)))["containers"][0]
    assert container["workingDir"] == service["workingDir"]  # where its alembic.ini is
    assert container["image"] == service["image"]
    assert pod_spec(topics)["containers"][0]["command"] == ["python", "-m", "shopkit.kafka_admin"]


def test_the_seed_job_is_off_by_default_and_runs_the_demo_after_install() -> None:
    assert not [o for o in render() if o["metadata"]["name"] == "shop-seed"]
    seed = find(render("scale"), "Job", "shop-seed")
    assert seed["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    container = pod_spec(seed)["containers"][0]
    assert container["command"] == ["python", "-m", demo.__name__]
    env = env_of(container)
    assert env["SHOP_GATEWAY_URL"] == "http://shop-gateway:8000"
    for name in (local_secrets.ADMIN_PASSWORD, local_secrets.DEMO_PASSWORD):
        assert env[name] == {"secretKeyRef": {"name": SECRET, "key": name}}


# -- secrets and security --------------------------------------------------------------------


def test_no_secret_is_rendered_and_none_is_needed_from_values() -> None:
    for value_set in VALUE_SETS:
        assert not [o for o in render(value_set) if o["kind"] == "Secret"]
    # nothing in the chart looks like a key or a password: long random strings, PEM
    for path in CHART.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert "-----BEGIN" not in text, path
            assert not RANDOM_LOOKING.findall(text), path
    missing = helm(
        "template",
        RELEASE,
        str(CHART),
        "--set",
        "kafka.bootstrap=k:9092",
        "--set",
        "postgres.host=pg",
        check=False,
    )
    assert missing.returncode != 0 and "secrets.existingSecret" in missing.stderr


def secret_keys(objects: list[dict[str, Any]]) -> set[str]:
    """The keys of the shop's Secret that some container reads."""
    keys = set()
    for obj in objects:
        if obj["kind"] in ("Deployment", "Job"):
            for container in pod_spec(obj)["containers"]:
                for value in env_of(container).values():
                    if isinstance(value, dict) and value["secretKeyRef"]["name"] == SECRET:
                        keys.add(value["secretKeyRef"]["key"])
    return keys


def test_make_secrets_file_becomes_the_secret_the_chart_reads(tmp_path: Path) -> None:
    made = local_secrets.ensure(tmp_path)
    script = CHART.parent / "secret-env.sh"
    printed = subprocess.run(
        [str(script), str(local_secrets.secrets_file(tmp_path))],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # kubectl --from-env-file: KEY=value, the value taken as it is (quotes would be kept)
    env = dict(line.split("=", 1) for line in printed.splitlines())
    assert secret_keys(render("scale")) <= set(env)
    assert "SHOP_PG_PASSWORD" not in env, "no pod needs the superuser's password"
    for name, value in env.items():
        assert value == made[name]


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_every_pod_runs_as_non_root_with_a_read_only_root(value_set: str) -> None:
    pods = [o for o in render(value_set) if o["kind"] in ("Deployment", "Job")]
    assert len(pods) >= 2 * len(SERVICES) + 2
    for pod in pods:
        spec = pod_spec(pod)
        assert spec["securityContext"]["runAsNonRoot"] is True, pod["metadata"]["name"]
        assert spec["securityContext"]["runAsUser"] > 0
        assert spec["automountServiceAccountToken"] is False
        assert spec["enableServiceLinks"] is False  # no SHOP_WALLET_PORT from Service "shop-wallet"
        for container in spec["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"]["drop"] == ["ALL"]


# -- the connection budget -------------------------------------------------------------------


def worst_case_connections(objects: list[dict[str, Any]]) -> int:
    """The arithmetic of docs/deployment.md, from the rendered objects alone."""
    total = 0
    for spec in SERVICES:
        deployment = find(objects, "Deployment", component(spec))
        hpas = [
            o
            for o in objects
            if o["kind"] == "HorizontalPodAutoscaler" and o["metadata"]["name"] == component(spec)
        ]
        most = hpas[0]["spec"]["maxReplicas"] if hpas else deployment["spec"]["replicas"]
        surge = deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"]
        env = env_of(pod_spec(deployment)["containers"][0])
        per_process = int(env["SHOP_DB_POOL_SIZE"]) + EXTRA_CONNECTIONS
        total += (most + surge) * per_process + 1  # + its migration job
    return total


def test_the_worst_case_fits_max_connections_in_both_value_sets() -> None:
    assert worst_case_connections(render()) == 6 * 3 * (14 + 2) + 6 <= 300 - 3
    assert worst_case_connections(render("scale")) == 6 * 5 * (10 + 2) + 6 <= 500 - 3


def test_a_release_that_would_exhaust_max_connections_is_refused() -> None:
    result = helm(
        "template",
        RELEASE,
        str(CHART),
        "-f",
        str(values_file("default")),
        "--set",
        "serviceDefaults.replicaCount=3",
        check=False,
    )
    assert result.returncode != 0
    assert "connection budget" in result.stderr and "390" in result.stderr


# -- the gateway -----------------------------------------------------------------------------


def gateway_config(objects: list[dict[str, Any]]) -> str:
    config: str = find(objects, "ConfigMap", "shop-gateway")["data"]["nginx.conf"]
    return config


def locations(config: str) -> list[str]:
    return [" ".join(m.split()) for m in LOCATION.findall(config)]


def test_the_gateway_routes_as_compose_does_to_this_releases_services() -> None:
    objects = render()
    config = gateway_config(objects)
    compose = (ROOT / "infra" / "gateway" / "nginx.compose.conf").read_text()
    assert locations(config) == locations(compose)
    assert len(locations(config)) > 20
    composed = dict(UPSTREAM.findall(compose))
    charted = dict(UPSTREAM.findall(config))
    assert set(charted) == set(composed)
    for upstream, address in composed.items():
        assert charted[upstream] == f"{RELEASE}-{address}", upstream
        find(objects, "Service", charted[upstream].split(":")[0])
    deployment = find(objects, "Deployment", "shop-gateway")
    checksum = deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    assert len(checksum) == 64, "a changed nginx.conf must roll the gateway"


def test_the_rendered_gateway_config_is_valid_nginx(tmp_path: Path) -> None:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).is_file():
        pytest.skip("no nginx (make install installs it)")
    config = gateway_config(render("scale"))
    # Service names resolve only in the cluster: any address checks the syntax as well.
    local = re.sub(r"server [\w.-]+:8000;", "server 127.0.0.1:8000;", config)
    local = local.replace("pid /tmp/nginx.pid;", f"pid {tmp_path}/nginx.pid;")
    (tmp_path / "nginx.conf").write_text(local)
    result = subprocess.run(
        [
            nginx,
            "-t",
            "-p",
            str(tmp_path),
            "-c",
            str(tmp_path / "nginx.conf"),
            "-e",
            str(tmp_path / "error.log"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr


def test_a_disabled_service_is_not_deployed_and_its_routes_answer_503() -> None:
    objects = render(
        "default",
        "--set",
        "services.payment-mock.enabled=false",
        "--set",
        "config.paymentUrl=https://pay.example.com",
    )
    assert not [o for o in objects if o["metadata"]["name"].startswith("shop-payment-mock")]
    order = env_of(pod_spec(find(objects, "Deployment", "shop-order"))["containers"][0])
    assert order["SHOP_PAYMENT_URL"] == "https://pay.example.com"
    assert dict(UPSTREAM.findall(gateway_config(objects)))["payment"] == "127.0.0.1:9"


# -- Strimzi topics --------------------------------------------------------------------------


def strimzi_topics_module() -> Any:
    path = CHART.parent / "strimzi_topics.py"
    spec = importlib.util.spec_from_file_location("strimzi_topics", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_strimzi_topics_cover_every_topic_replicated() -> None:
    wanted = topic_configs("prod.")
    resources = strimzi_topics_module().kafka_topics("shop-kafka", prefix="prod.")
    assert {r["spec"]["topicName"] for r in resources} == set(wanted)
    names = [r["metadata"]["name"] for r in resources]
    assert len(set(names)) == len(names)
    for resource in resources:
        assert DNS_SUBDOMAIN.fullmatch(resource["metadata"]["name"])
        assert resource["metadata"]["labels"] == {"strimzi.io/cluster": "shop-kafka"}
        spec = resource["spec"]
        partitions, config = wanted[spec["topicName"]]
        assert spec["partitions"] == partitions and spec["replicas"] == 3
        assert spec["config"] == {**config, "min.insync.replicas": "2"}


def test_strimzi_topics_print_as_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    assert strimzi_topics_module().main(["--cluster", "shop-kafka"]) == 0
    printed = [d for d in yaml.load_all(capsys.readouterr().out, Loader=StrictLoader) if d]
    assert len(printed) == len(topic_configs()) and printed[0]["kind"] == "KafkaTopic"
