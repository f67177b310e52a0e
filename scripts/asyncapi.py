"""Write each service's AsyncAPI document to services/<name>/asyncapi.json (make asyncapi)."""

import importlib
import sys
from pathlib import Path

from shopdev.stack import SERVICES, ServiceSpec
from shopkit.asyncapi import render

ROOT = Path(__file__).resolve().parents[1]


def built(spec: ServiceSpec) -> str:
    module, factory = spec.factory.split(":")
    return render(getattr(importlib.import_module(module), factory)())


def main() -> int:
    for spec in SERVICES:
        target = ROOT / spec.directory / "asyncapi.json"
        target.write_text(built(spec))
        print(f"[asyncapi] wrote {target.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
