"""The gateway's connection-storm settings, as infra/local/gateway.sh renders them and as compose
ships them: a flash sale opens ~1,000 connections at once (docs/performance.md "Connection
storms"); bench/storm_bench.py measures it, these only keep the settings from slipping."""

import os
import re
import resource
import subprocess
from pathlib import Path

import pytest

from shopdev.testing import repo_root

ROOT = repo_root()
GATEWAY = ROOT / "infra" / "local" / "gateway.sh"
COMPOSE_CONF = ROOT / "infra" / "gateway" / "nginx.compose.conf"
STORM = 1_000  # simultaneous new connections the gateway must take without a retransmit
SOMAXCONN = int(Path("/proc/sys/net/core/somaxconn").read_text())


def render(local_dir: Path, **env: str) -> tuple[str, str]:
    """(the rendered nginx.conf, what gateway.sh said on stderr)."""
    done = subprocess.run(
        ["bash", str(GATEWAY), "render"],
        env={**os.environ, "SHOP_LOCAL_DIR": str(local_dir), **env},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return (local_dir / "nginx" / "nginx.conf").read_text(), done.stderr


def setting(conf: str, name: str) -> str:
    found = re.findall(rf"^\s*{name}\s+([^;]+);", conf, re.MULTILINE)
    assert len(found) == 1, (name, found)
    return str(found[0])


def listen_backlog(conf: str) -> int:
    listen = setting(conf, "listen")
    found = re.search(r"\bbacklog=(\d+)\b", listen)
    assert found, f"no backlog on 'listen {listen}': nginx's default of 511 overflows"
    return int(found.group(1))


def check_storm_settings(conf: str) -> None:
    connections = int(setting(conf, "worker_connections"))
    # Each client connection may hold an upstream one; one worker may take the whole storm.
    assert connections >= 2 * STORM * 2, connections
    assert int(setting(conf, "worker_rlimit_nofile")) >= 2 * connections
    assert setting(conf, "multi_accept") == "on"


def test_the_local_gateway_holds_a_storm_in_its_listen_queue(tmp_path: Path) -> None:
    conf, said = render(tmp_path)
    assert listen_backlog(conf) == min(4096, SOMAXCONN) >= STORM
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if os.geteuid() != 0 and hard != resource.RLIM_INFINITY and hard < 16384:
        # An unprivileged nginx cannot go past the hard limit: the render says so and caps.
        assert int(setting(conf, "worker_rlimit_nofile")) == hard
        assert int(setting(conf, "worker_connections")) == hard // 2
        assert "ulimit -Hn" in said
    else:
        check_storm_settings(conf)
    assert "somaxconn" not in said or SOMAXCONN < 4096


@pytest.mark.skipif(SOMAXCONN >= 1_000_000, reason="no backlog above this host's somaxconn")
def test_a_backlog_above_somaxconn_is_capped_and_says_what_to_set(tmp_path: Path) -> None:
    conf, said = render(tmp_path, SHOP_GATEWAY_BACKLOG=str(SOMAXCONN + 1))
    assert listen_backlog(conf) == SOMAXCONN
    assert f"sysctl -w net.core.somaxconn={SOMAXCONN + 1}" in said


def test_a_backlog_that_is_not_a_number_is_refused(tmp_path: Path) -> None:
    done = subprocess.run(
        ["bash", str(GATEWAY), "render"],
        env={**os.environ, "SHOP_LOCAL_DIR": str(tmp_path), "SHOP_GATEWAY_BACKLOG": "lots"},
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 and "SHOP_GATEWAY_BACKLOG" in done.stderr


def test_compose_gateway_has_the_same_storm_settings() -> None:
    conf = COMPOSE_CONF.read_text()
    assert listen_backlog(conf) == 4096
    check_storm_settings(conf)
