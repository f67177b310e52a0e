"""Compose's gateway serves the web pages the local gateway serves, without a Docker engine: its
image is the Dockerfile's `gateway` stage, which builds every web/<name> with npm and copies
each dist where nginx.compose.conf's locations look, with the build context holding them."""

import re
from pathlib import Path

import yaml

from shopdev.testing import repo_root

from .test_dockerfile import dockerignore_rules, ignored, stages

ROOT = repo_root()
WEB = sorted(p.parent.name for p in (ROOT / "web").glob("*/package-lock.json"))


def test_compose_builds_the_gateway_from_its_stage() -> None:
    gateway = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["gateway"]
    assert gateway["build"] == {"context": ".", "target": "gateway"}
    assert "volumes" not in gateway, "the config is in the image, as the pages are"


def test_the_gateway_stage_has_the_config_and_every_built_page() -> None:
    web, gateway = stages()["web"], stages()["gateway"]
    assert web[0].arguments.startswith("node:")
    build = " ".join(i.arguments for i in web if i.keyword == "RUN")
    assert "npm ci" in build and "npm run build" in build
    copies = [i.arguments for i in gateway if i.keyword == "COPY"]
    assert "infra/gateway/nginx.compose.conf /etc/nginx/nginx.conf" in copies
    assert "--from=web /out/ /usr/share/nginx/html/" in copies
    assert "console" in WEB
    compose_conf = (ROOT / "infra" / "gateway" / "nginx.compose.conf").read_text()
    local_conf = (ROOT / "infra" / "gateway" / "nginx.conf.template").read_text()
    # The console at /console/ in both (other pages may sit under other paths).
    assert "alias /usr/share/nginx/html/console/;" in compose_conf
    assert re.search(r'alias "\$\{SHOP_WEB_DIR\}/console/dist/";', local_conf)


def test_the_build_context_holds_the_web_sources_but_not_their_builds() -> None:
    rules = dockerignore_rules()
    assert not ignored("infra/gateway/nginx.compose.conf", rules)
    for name in WEB:
        sources = [p for p in (ROOT / "web" / name).rglob("*") if p.is_file()]
        kept = [p.relative_to(ROOT).as_posix() for p in sources if not _built(p)]
        assert kept and not [path for path in kept if ignored(path, rules)]
        for built in ("node_modules/chart.js/package.json", "dist/index.html"):
            assert ignored(f"web/{name}/{built}", rules)


def _built(path: Path) -> bool:
    return bool({"node_modules", "dist"} & set(path.parts))
