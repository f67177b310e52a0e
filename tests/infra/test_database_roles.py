"""One database role per service: a service's role owns its database and cannot reach another's.

The test harness (`create_database`) makes each database the way the local stack does, owned by
its own login role, and migrates it as that role; infra/local/postgres.sh does the same for the
local stack and hands over databases an older run made while every service was the superuser.
"""

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from shopdev.testing import Infra, create_database, repo_root, unique_name
from shopkit.db import asyncpg_dsn

ROOT = repo_root()
POSTGRES_SH = ROOT / "infra" / "local" / "postgres.sh"
ALEMBIC = str(Path(sys.executable).parent / "alembic")
WALLET = ROOT / "services" / "wallet"


async def connect(url: str) -> asyncpg.Connection:
    return await asyncpg.connect(asyncpg_dsn(url))


def database_of(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


async def run(args: list[str], env: dict[str, str], cwd: Path = ROOT) -> str:
    """Run a command off the event loop; its stdout, or the test fails with its stderr."""
    done = await asyncio.to_thread(
        subprocess.run, args, cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


async def owners(url: str) -> set[str]:
    """Who owns the tables and sequences of the database at `url`."""
    conn = await connect(url)
    try:
        rows = await conn.fetch(
            "SELECT DISTINCT relowner::regrole::text FROM pg_class"
            " WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'S')"
        )
        return {r[0] for r in rows}
    finally:
        await conn.close()


@pytest.fixture(scope="module")
async def wallet_and_catalog(infra: Infra) -> tuple[str, str]:
    """Two service databases, each migrated by its own role (a failed migration fails here)."""
    wallet, catalog = await asyncio.gather(
        create_database(infra, WALLET, unique_name("wallet")),
        create_database(infra, ROOT / "services" / "catalog", unique_name("catalog")),
    )
    return wallet, catalog


async def test_a_service_role_owns_its_database_and_nothing_more(
    wallet_and_catalog: tuple[str, str],
) -> None:
    wallet, _ = wallet_and_catalog
    role = urlsplit(wallet).username
    assert await owners(wallet) == {role}  # the migrations ran as the role
    conn = await connect(wallet)
    try:
        attributes = await conn.fetchrow(
            "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls"
            " FROM pg_roles WHERE rolname = current_user"
        )
        assert not any(attributes.values())
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute('CREATE DATABASE "t_roles_must_not_create"')
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("SET ROLE postgres")
        # dblink and postgres_fdw would reach other databases: untrusted, superuser only
        available = await conn.fetch(
            "SELECT name FROM pg_available_extensions WHERE name IN ('dblink', 'postgres_fdw')"
        )
        for (extension,) in available:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(f"CREATE EXTENSION {extension}")
    finally:
        await conn.close()


async def test_a_service_role_cannot_read_another_services_tables(
    wallet_and_catalog: tuple[str, str],
) -> None:
    wallet, catalog = wallet_and_catalog
    catalog_db = database_of(catalog)
    catalog_conn = await connect(catalog)
    try:  # the catalog's own role reads its products
        assert await catalog_conn.fetchval("SELECT count(*) FROM products") == 0
    finally:
        await catalog_conn.close()

    # the wallet's role, with the wallet's credentials, asks for the catalog's database
    split = urlsplit(wallet)
    into_catalog = split._replace(path=f"/{catalog_db}").geturl()
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="CONNECT"):
        await connect(into_catalog)

    # and from inside its own database, a direct reference across is impossible
    conn = await connect(wallet)
    try:
        with pytest.raises(asyncpg.FeatureNotSupportedError, match="cross-database"):
            await conn.fetchval(f'SELECT count(*) FROM "{catalog_db}".public.products')
    finally:
        await conn.close()


async def test_postgres_sh_hands_a_database_of_an_older_run_to_its_role(
    infra: Infra, tmp_path: Path
) -> None:
    """`make dev` on a data dir an older run made: the superuser's tables go to the new role,
    whose password is generated once, kept in .local/secrets, and migrates the database."""
    admin = urlsplit(infra.pg_admin_url)
    if admin.hostname not in ("127.0.0.1", "localhost"):
        pytest.skip("infra/local/postgres.sh talks to 127.0.0.1 only")
    name = unique_name("legacy")
    role = f"shop_{name}"
    server = await asyncpg.connect(infra.pg_admin_url)
    try:
        await server.execute(f'CREATE DATABASE "{name}"')
        # as every service did before: the superuser created and migrated the database
        await run(
            [ALEMBIC, "upgrade", "head"], {"SHOP_DATABASE_URL": infra.database_url(name)}, WALLET
        )
        assert await owners(infra.database_url(name)) == {admin.username}

        env = {
            "SHOP_LOCAL_DIR": str(tmp_path),
            "SHOP_PG_PORT": str(admin.port or 5432),
            "SHOP_PG_USER": admin.username or "postgres",
            "SHOP_PG_PASSWORD": admin.password or "",
            "SHOP_PG_DATABASES": name,
        }

        await run(["bash", str(POSTGRES_SH), "databases"], env)
        secret = tmp_path / "secrets" / f"db-{role}.password"
        password = secret.read_text()
        assert len(password) >= 32 and secret.stat().st_mode & 0o777 == 0o600
        # every start runs it again: nothing changes
        await run(["bash", str(POSTGRES_SH), "databases"], env)
        assert secret.read_text() == password

        url = await run(["bash", str(POSTGRES_SH), "url", name], env)
        split = urlsplit(url)
        assert (split.username, split.password, split.path) == (role, password, f"/{name}")
        assert await owners(url) == {role}
        public_connect = await server.fetchval(  # grantee 0 is PUBLIC
            "SELECT count(*) FROM pg_database, aclexplode(datacl) a"
            " WHERE datname = $1 AND a.grantee = 0 AND a.privilege_type = 'CONNECT'",
            name,
        )
        assert public_connect == 0
        # the role can alter what it took over
        await run([ALEMBIC, "downgrade", "-1"], {"SHOP_DATABASE_URL": url}, WALLET)
        await run([ALEMBIC, "upgrade", "head"], {"SHOP_DATABASE_URL": url}, WALLET)
    finally:
        await server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await server.execute(f'DROP ROLE IF EXISTS "{role}"')
        await server.close()


def test_compose_connects_every_service_as_its_role_with_a_required_password() -> None:
    """docker-compose.yml: no service is the superuser, and each role's password must be set
    (compose refuses to start naming the variable) for both the server and the service."""
    compose = (ROOT / "docker-compose.yml").read_text()
    assert "POSTGRES_PASSWORD: ${SHOP_PG_PASSWORD:?" in compose
    urls = re.findall(r"SHOP_DATABASE_URL: (.+)$", compose, re.MULTILINE)
    assert len(urls) == 6
    for url in urls:
        database = url.rsplit("/", 1)[1]
        variable = f"SHOP_{database.upper()}_DB_PASSWORD"
        required = "${" + variable + ":?"
        assert url.startswith(f"postgresql+asyncpg://shop_{database}:{required}"), url
        assert f"{variable}: {required}" in compose  # the server creates the role with it
