"""The shop's one OpenAPI document (served by the gateway at /api/openapi.json) and the problem
codes catalogue (docs/errors.md) are what the code makes, and say what clients need.

Run `make docs` after changing a route, a schema or a problem code, and commit the diff.
"""

import ast
import difflib
import importlib.util
import json
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from openapi_spec_validator import validate

from shopdev.testing import repo_root
from shopkit.errors import VALIDATION_CODES
from shopkit.openapi import CODES

PROBLEM = "application/problem+json"
METHODS = ("get", "put", "post", "patch", "delete")
# Public reads (API.md "Identity"): everything else needs a credential.
OPEN = {
    ("post", "/api/users"),
    ("post", "/api/auth/login"),
    ("get", "/api/categories"),
    ("get", "/api/products"),
    ("get", "/api/products/{product_id}"),
    ("get", "/api/products/popular"),
    ("get", "/api/stats/sales"),
}


@cache
def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "openapi_script", repo_root() / "scripts" / "openapi.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def generated() -> dict[str, str]:
    return script().generated()


@cache
def document() -> dict[str, Any]:
    return json.loads(generated()[script().DOCUMENT])


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, op)
        for path, item in document()["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]


def resolved(response: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in response:
        return document()["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    return response


def codes_of(op: dict[str, Any], status: str) -> set[str]:
    response = resolved(op["responses"].get(status, {}))
    return set(response.get("content", {}).get(PROBLEM, {}).get("examples", {}))


@pytest.mark.parametrize("name", ["docs/generated/openapi.json", "docs/errors.md"])
def test_checked_in_file_matches_the_code(name: str) -> None:
    path = repo_root() / name
    assert path.is_file(), f"{name} is missing: run make docs and commit it"
    committed, made = path.read_text(), generated()[name]
    diff = difflib.unified_diff(
        committed.splitlines(), made.splitlines(), name, "what the code makes", lineterm=""
    )
    assert committed == made, f"{name} is stale: run make docs and commit the diff\n" + "\n".join(
        list(diff)[:40]
    )


def test_the_document_is_valid_openapi() -> None:
    validate(document())


def test_only_gateway_routes_are_documented() -> None:
    paths = set(document()["paths"])
    assert all(p.startswith("/api/") for p in paths), sorted(paths)
    assert "/api/orders" in paths and "/api/ops/order/dead-letters" in paths
    assert "/api/ops/order/parked-orders" in paths


def test_every_protected_route_names_its_scheme_and_its_401() -> None:
    schemes = document()["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert schemes["merchantKey"]["name"] == "X-Merchant-Key"
    for method, path, op in operations():
        if (method, path) in OPEN:
            assert "security" not in op, f"{method} {path} is public"
            continue
        assert op.get("security"), f"{method.upper()} {path} documents no credential"
        assert {"UNAUTHORIZED", "INVALID_TOKEN"} <= codes_of(op, "401"), (method, path)
        if any("admin" in req.get("bearer", []) for req in op["security"]):
            assert "FORBIDDEN" in codes_of(op, "403"), (method, path)


def test_the_provider_takes_the_merchant_key() -> None:
    paths = document()["paths"]
    assert paths["/api/payments"]["post"]["security"] == [{"merchantKey": []}]
    assert {"merchantKey": []} in paths["/api/payments/{payment_id}"]["get"]["security"]
    assert "INVALID_MERCHANT_KEY" in codes_of(paths["/api/payments"]["post"], "401")


def test_every_route_documents_its_problems_with_examples() -> None:
    for method, path, op in operations():
        where = f"{method.upper()} {path}"
        assert "RATE_LIMITED" in codes_of(op, "429"), where
        assert "SERVICE_UNAVAILABLE" in codes_of(op, "503"), where
        if op.get("parameters") or "requestBody" in op:
            assert "VALIDATION_ERROR" in codes_of(op, "422"), where
        for status, response in op["responses"].items():
            if int(status) < 400:
                continue
            content = resolved(response)["content"]
            assert set(content) == {PROBLEM}, f"{where} {status} is not only problem+json"
            assert content[PROBLEM]["schema"] == {"$ref": "#/components/schemas/Problem"}
            for code, example in content[PROBLEM]["examples"].items():
                assert example["value"]["code"] == code
                assert example["value"]["status"] == int(status), (where, code)
    assert "HTTPValidationError" not in json.dumps(document())


def test_placing_an_order_documents_every_answer() -> None:
    place = document()["paths"]["/api/orders"]["post"]
    assert {"200", "202", "401", "403", "409", "422", "429", "503"} <= set(place["responses"])
    assert {"IDEMPOTENCY_IN_PROGRESS"} <= codes_of(place, "409")
    assert {"IDEMPOTENCY_KEY_REUSED", "VALIDATION_ERROR"} <= codes_of(place, "422")
    modify = document()["paths"]["/api/orders/{order_id}"]["patch"]
    assert {"ORDER_NOT_MODIFIABLE", "OUT_OF_STOCK", "INSUFFICIENT_BALANCE"} <= codes_of(
        modify, "409"
    )
    issue = document()["paths"]["/api/coupons/{coupon_id}/issue"]["post"]
    assert {"SOLD_OUT", "ALREADY_ISSUED"} <= codes_of(issue, "409")


def _constant(node: ast.expr, names: dict[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return names.get(node.id)
    return None


def raised_codes() -> set[tuple[int, str]]:
    """(status, code) of every Problem(...) and problem_response(...) in the source."""
    found: set[tuple[int, str]] = set()
    roots = [repo_root() / "libs" / "shopkit" / "src"]
    roots += sorted((repo_root() / "services").glob("*/src"))
    for source in (f for root in roots for f in root.rglob("*.py")):
        tree = ast.parse(Path(source).read_text())
        names = {
            t.id: n.value.value
            for n in tree.body
            if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant)
            for t in n.targets
            if isinstance(t, ast.Name)
        }
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or len(node.args) < 2:
                continue
            called = getattr(node.func, "id", getattr(node.func, "attr", ""))
            if called not in ("Problem", "problem_response"):
                continue
            status, code = (_constant(a, names) for a in node.args[:2])
            if isinstance(status, int) and isinstance(code, str):
                found.add((status, code))
    return found


def test_every_code_the_code_answers_is_catalogued() -> None:
    generated()  # builds every service, so every api.py has defined its codes
    raised = raised_codes()
    assert len(raised) > 30, "the scan found too few codes: did Problem(...) change shape?"
    assert (404, "ORDER_NOT_FOUND") in raised and (429, "RATE_LIMITED") in raised
    missing = sorted(raised - set(CODES))
    assert not missing, f"codes with no definition (shopkit.openapi.define): {missing}"
    for code in set(VALIDATION_CODES.values()):
        assert (422, code) in CODES, f"validation code {code} has no definition"


def test_every_service_code_is_on_a_route() -> None:
    documented = {
        (int(status), code)
        for _, _, op in operations()
        for status in op["responses"]
        for code in codes_of(op, status)
    }
    for (status, code), defined in CODES.items():
        if defined.source not in ("kit", "gateway"):
            assert (status, code) in documented, f"{code} ({status}) is on no route"


def test_every_route_is_in_a_listed_group() -> None:
    listed = [tag["name"] for tag in document()["tags"]]
    used = {tag for _, _, op in operations() for tag in op["tags"]}
    assert used == set(listed), f"add the group to TAGS in scripts/openapi.py: {used - set(listed)}"
