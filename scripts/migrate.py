"""`make migrate`: apply every service's migrations to its local database, as its own role."""

import os
from pathlib import Path

from shopdev.stack import SERVICES, local_database_url, migrate

ROOT = Path(__file__).resolve().parents[1]
LOCAL = Path(os.environ.get("SHOP_LOCAL_DIR", ROOT / ".local"))

if __name__ == "__main__":
    for spec in SERVICES:
        migrate(ROOT, spec, local_database_url(LOCAL, spec))
        print(f"[migrate] {spec.name}: at head")
