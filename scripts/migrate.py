"""`make migrate`: apply every service's migrations to its local database."""

import os
from pathlib import Path

from shopkit.stack import SERVICES, migrate

ROOT = Path(__file__).resolve().parents[1]
PG = (
    f"{os.environ.get('SHOP_PG_USER', 'postgres')}:{os.environ.get('SHOP_PG_PASSWORD', 'postgres')}"
    f"@127.0.0.1:{os.environ.get('SHOP_PG_PORT', '5432')}"
)

if __name__ == "__main__":
    for spec in SERVICES:
        migrate(ROOT, spec, f"postgresql+asyncpg://{PG}/{spec.database}")
        print(f"[migrate] {spec.name}: at head")
