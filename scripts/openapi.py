"""The shop's one OpenAPI document and its catalogue of problem codes (part of `make docs`).

- docs/generated/openapi.json: the six services' own documents (shopkit.openapi) merged as the
  gateway serves them: `/api/...` as is, each service's `/ops/...` as `/api/ops/<service>/...`,
  its internal routes (/health, /ready, /metrics) left out. The gateway serves it at
  /api/openapi.json and Swagger UI at /api/docs.
- docs/errors.md: every problem code with its status, meaning and the routes that answer it.
tests/docs fails when either differs from what the code makes.
"""

import importlib
import json
import sys
from pathlib import Path
from typing import Any, get_args

from contracts.order import OrderFailed
from shopdev.stack import SERVICES, ServiceSpec
from shopkit.openapi import CODES, INTERNAL_PATHS, Code, example_of

ROOT = Path(__file__).resolve().parents[1]
DOCUMENT = "docs/generated/openapi.json"
CATALOGUE = "docs/errors.md"
METHODS = ("get", "put", "post", "patch", "delete")
# Codes no public route documents, and where they come from instead.
UNROUTED = {
    "NOT_READY": "`/ready` of each service (its own port, not the gateway)",
    "INTERNAL_ERROR": "none: a bug",
}

DESCRIPTION = """\
The shop's public HTTP API through the gateway (one origin: every path starts with `/api`).

**Try it out**: `POST /api/auth/login` with an email and password, copy `access_token`, press
**Authorize** and paste it as `bearer`. Admin-only routes (their `security` names the role
`admin`: the "Admin" ones and every `operations` group) need the admin's token
(`admin@shop.local`); the payment provider's merchant routes take `merchantKey` instead.

Errors are RFC 9457 problem details (`application/problem+json`) with a stable `code`; every
route lists its codes with an example; `docs/errors.md` in the repository lists them all.
Money is an integer number of KRW. Lists are `{{items, next_cursor}}` pages.

Kafka messages (commands, replies, events and their `.dlt` dead-letter topics) are described per
service in AsyncAPI: {asyncapi}.
"""


# The order Swagger UI shows the groups in, the client's journey first, operators' last.
TAGS = {
    "wallet": "Sign up, log in (the bearer token), balances and the ledger.",
    "catalog": "Categories and products; creating and restocking is the admin's.",
    "orders": "Orders paid through the saga; cancel and modify of a PAID order.",
    "coupons": "First-come-first-served coupons and the user's coupons.",
    "analytics": "Popular products and sales statistics (public reads).",
    "payments": "The payment provider's merchant API (the merchant key) and its admin knobs.",
}


def gateway_name(spec: ServiceSpec) -> str:
    """How the gateway names a service in /api/ops/<name>/ and /api/asyncapi/<name>."""
    return spec.name.split("-")[0]


def service_document(spec: ServiceSpec) -> dict[str, Any]:
    module, factory = spec.factory.split(":")
    app = getattr(importlib.import_module(module), factory)()
    return app.openapi()


def _public_path(spec: ServiceSpec, path: str) -> str | None:
    if path in INTERNAL_PATHS:
        return None
    if path.startswith("/ops/"):
        return f"/api/ops/{gateway_name(spec)}/{path.removeprefix('/ops/')}"
    return path if path.startswith("/api/") else None


def _merge_schemas(into: dict[str, Any], schemas: dict[str, Any], service: str) -> None:
    for name, schema in schemas.items():
        if name in into and into[name] != schema:
            raise SystemExit(
                f"schema {name} of {service} differs from another service's: rename one"
            )
        into[name] = schema


def merged() -> dict[str, Any]:
    """The gateway's document, merged from every service's own."""
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    schemes: dict[str, Any] = {}
    responses: dict[str, Any] = {}
    operation_ids: set[str] = set()
    for spec in SERVICES:
        document = service_document(spec)
        for path, item in document["paths"].items():
            public = _public_path(spec, path)
            if public is None:
                continue
            if public in paths:
                raise SystemExit(f"{public} is served by two services")
            for method, operation in item.items():
                if method not in METHODS:
                    continue
                if public.startswith("/api/ops/"):
                    operation["operationId"] = f"{gateway_name(spec)}_{operation['operationId']}"
                    operation["tags"] = [f"operations: {gateway_name(spec)}"]
                if operation["operationId"] in operation_ids:
                    raise SystemExit(f"operationId {operation['operationId']} is not unique")
                operation_ids.add(operation["operationId"])
            paths[public] = item
        components = document.get("components", {})
        _merge_schemas(schemas, components.get("schemas", {}), spec.name)
        schemes.update(components.get("securitySchemes", {}))
        responses.update(components.get("responses", {}))
    asyncapi = ", ".join(f"[{spec.name}](/api/asyncapi/{gateway_name(spec)})" for spec in SERVICES)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Shop API",
            "version": "1.0.0",
            "description": DESCRIPTION.format(asyncapi=asyncapi),
        },
        "tags": [{"name": name, "description": text} for name, text in TAGS.items()]
        + [
            {
                "name": f"operations: {gateway_name(spec)}",
                "description": f"Admin only: the {spec.name} service's dead letters"
                + (" and parked orders" if spec.name == "order" else "")
                + " (docs/operations.md).",
            }
            for spec in SERVICES
        ],
        "paths": dict(sorted(paths.items())),
        "components": {
            "responses": dict(sorted(responses.items())),
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": dict(sorted(schemes.items())),
        },
    }


def render_document(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _routes_by_code(document: dict[str, Any]) -> dict[tuple[int, str], list[str]]:
    routes: dict[tuple[int, str], list[str]] = {}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if "$ref" in response:
                    response = document["components"]["responses"][response["$ref"].split("/")[-1]]
                examples = response.get("content", {}).get("application/problem+json", {})
                for code in examples.get("examples", {}):
                    routes.setdefault((int(status), code), []).append(f"{method.upper()} {path}")
    return routes


def _where(code: Code, routes: list[str], total: int) -> str:
    if code.source == "gateway":
        return "any route (the gateway answers it)"
    if code.code in ("RATE_LIMITED", "SERVICE_UNAVAILABLE") and len(routes) == total:
        return "every route"
    if not routes:
        return UNROUTED.get(code.code, "any route (the framework answers it)")
    if len(routes) > 4:
        return f"{len(routes)} routes, e.g. " + ", ".join(f"`{r}`" for r in routes[:2])
    return ", ".join(f"`{r}`" for r in routes)


def catalogue(document: dict[str, Any]) -> str:
    """docs/errors.md: every problem code, from the code's own definitions."""
    routes = _routes_by_code(document)
    total = sum(1 for item in document["paths"].values() for m in item if m in METHODS)
    lines = [
        "<!-- generated by `make docs` from the code (shopkit.openapi and each service's api.py);"
        " do not edit by hand -->",
        "# Problem codes",
        "",
        "Every error is an RFC 9457 problem (`application/problem+json`) whose `code` is stable:"
        " a client branches on `code`, never on `title` or `detail`. 429 and 503 come with"
        " `Retry-After`. A 500 `INTERNAL_ERROR` is always a bug. The same codes, with an example"
        " each, are in the OpenAPI document at `/api/openapi.json` (Swagger UI: `/api/docs`).",
        "",
        "Example:",
        "",
        "```json",
        json.dumps(example_of(CODES[(404, "ORDER_NOT_FOUND")]), indent=2),
        "```",
        "",
        "| code | status | meaning | routes |",
        "|---|---|---|---|",
    ]
    for code in sorted(CODES.values(), key=lambda c: (c.status, c.code)):
        where = _where(code, routes.get((code.status, code.code), []), total)
        lines.append(f"| `{code.code}` | {code.status} | {code.meaning} | {where} |")
    failures = get_args(OrderFailed.model_fields["failure_code"].annotation)
    lines += [
        "",
        "## Why an order FAILED",
        "",
        "Not HTTP errors: the `failure_code` of an order whose saga ended `FAILED` (and the 409"
        " code of a modify that could not be done, for the first four):",
        "",
        *(f"- `{failure}`" for failure in failures),
        "",
    ]
    return "\n".join(lines)


def generated() -> dict[str, str]:
    """Repository path -> content, for `make docs` and the tests."""
    document = merged()
    return {DOCUMENT: render_document(document), CATALOGUE: catalogue(document)}


def main() -> int:
    for name, text in generated().items():
        (ROOT / name).write_text(text)
        print(f"[openapi] wrote {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
