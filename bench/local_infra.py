"""This machine's PostgreSQL and free ports, as the benchmarks that start services find them."""

import os
import socket


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pg_admin_url() -> str:
    """SHOP_TEST_PG_ADMIN_URL, else the local stack's PostgreSQL (SHOP_PG_*)."""
    if url := os.environ.get("SHOP_TEST_PG_ADMIN_URL"):
        return url
    user = os.environ.get("SHOP_PG_USER", "postgres")
    password = os.environ.get("SHOP_PG_PASSWORD", "postgres")
    return f"postgresql://{user}:{password}@127.0.0.1:{os.environ.get('SHOP_PG_PORT', '5432')}/postgres"
