"""A service's OpenAPI document as a client sees it: one bearer scheme (the token from
POST /api/auth/login, `admin` as its role where only an admin may call), the merchant key on the
provider's routes, and for every route its problem+json responses with the stable codes.

Every problem code is defined once (shopkit.problems, or the service's api.py: `define`), with
its status, meaning and an example detail; routes name theirs with `problems(...)` in
`responses=`. The codes every route can answer (401 on a protected route, 422 on one that takes
input, 429 from the gateway's limits, 503 while a dependency is away) are added to every route
by `openapi_document`.
docs/errors.md and the gateway's merged document (scripts/openapi.py) are made from the same.
"""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field

from shopkit.errors import PROBLEM
from shopkit.problems import CODES, CODES_KEY, Code, Responses, define, example_of, lookup, problems

# The codes live in shopkit.problems; services and scripts name them from here too.
__all__ = [
    "BEARER",
    "CODES",
    "INTERNAL_PATHS",
    "MERCHANT",
    "Code",
    "ProblemDetails",
    "Responses",
    "complete",
    "define",
    "example_of",
    "install",
    "openapi_document",
    "problems",
]

# A service's own routes that the gateway does not serve: left out of the shop's document.
INTERNAL_PATHS = frozenset({"/health", "/ready", "/metrics"})
BEARER = "bearer"
MERCHANT = "merchantKey"
# The schemes' names as FastAPI's security classes call them (shopkit.auth, payment-mock's api).
_SCHEME_NAMES = {"HTTPBearer": (BEARER, []), "AdminBearer": (BEARER, ["admin"])}
_MERCHANT_NAMES = {"MerchantKey"}


_RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds to wait before trying again",
        "schema": {"type": "integer"},
    }
}


def _response(status: int, codes: list[Code]) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": "; ".join(f"`{c.code}`: {c.meaning}" for c in codes),
        "content": {
            PROBLEM: {
                "schema": {"$ref": "#/components/schemas/Problem"},
                "examples": {c.code: {"summary": c.meaning, "value": example_of(c)} for c in codes},
            }
        },
    }
    if status in (429, 503):
        response["headers"] = _RETRY_AFTER
    return response


class ValidationIssue(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ProblemDetails(BaseModel):
    """An RFC 9457 problem: `code` is the stable identifier a client branches on."""

    type: str = Field(examples=["https://shop.local/problems/order-not-found"])
    title: str
    status: int
    code: str = Field(pattern="^[A-Z][A-Z0-9_]*$")
    detail: str | None = None
    errors: list[ValidationIssue] | None = Field(
        default=None, description="422 VALIDATION_ERROR and field codes: each failing field"
    )


def _add(responses: dict[str, Any], status: int, codes: list[Code]) -> None:
    """Merge codes into a route's response for `status`, keeping what the route declared."""
    key = str(status)
    mine = _response(status, codes)
    existing = responses.get(key)
    if existing is None or _is_fastapi_default(existing):
        responses[key] = mine
        return
    existing.setdefault("content", {}).pop("application/json", None)  # FastAPI's default 422
    problem = existing["content"].setdefault(PROBLEM, {})
    problem["schema"] = {"$ref": "#/components/schemas/Problem"}
    examples = problem.setdefault("examples", {})
    added = [c for c in codes if c.code not in examples]
    for code in added:
        examples[code.code] = mine["content"][PROBLEM]["examples"][code.code]
    if added:
        more = "; ".join(f"`{c.code}`: {c.meaning}" for c in added)
        existing["description"] = f"{existing.get('description', '')}; {more}".strip("; ")
    if status in (429, 503):
        existing.setdefault("headers", _RETRY_AFTER)


def _is_fastapi_default(response: dict[str, Any]) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return bool(schema.get("$ref", "").endswith("/HTTPValidationError"))


def _securities(operation: dict[str, Any]) -> tuple[bool, bool, bool]:
    """(bearer, admin only, merchant key) of an operation, its security rewritten to ours."""
    rewritten: list[dict[str, list[str]]] = []
    bearer = admin = merchant = False
    alternatives = operation.get("security", [])
    for requirement in alternatives:
        new: dict[str, list[str]] = {}
        for name in requirement:
            if name in _SCHEME_NAMES:
                scheme, roles = _SCHEME_NAMES[name]
                new[scheme] = list(roles)
                bearer = True
                admin = admin or bool(roles)
            elif name in _MERCHANT_NAMES:
                new[MERCHANT] = []
                merchant = True
            else:
                new[name] = requirement[name]
        rewritten.append(new)
    if alternatives:
        operation["security"] = rewritten
    return bearer, admin, merchant


# Responses most routes share, referred to from components.responses: one copy each.
_SHARED = {
    "Unauthorized": (401, ("UNAUTHORIZED", "INVALID_TOKEN")),
    "Forbidden": (403, ("FORBIDDEN",)),
    "InvalidRequest": (422, ("VALIDATION_ERROR",)),
    "RateLimited": (429, ("RATE_LIMITED",)),
    "Unavailable": (503, ("SERVICE_UNAVAILABLE",)),
}


def _shared(response: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    """A reference to the shared response equal to `response`, or `response` itself."""
    for name, (status, codes) in _SHARED.items():
        shared = _response(status, [lookup((status, c)) for c in codes])
        if response == shared:
            components.setdefault("responses", {})[name] = shared
            return {"$ref": f"#/components/responses/{name}"}
    return response


def _problem_only(response: dict[str, Any]) -> None:
    """A problem response is problem+json with the Problem schema, never FastAPI's empty JSON."""
    content = response.get("content", {})
    if PROBLEM in content:
        content.pop("application/json", None)
        content[PROBLEM]["schema"] = {"$ref": "#/components/schemas/Problem"}


def _takes_input(operation: dict[str, Any]) -> bool:
    return bool(operation.get("parameters")) or "requestBody" in operation


def complete(document: dict[str, Any]) -> dict[str, Any]:
    """Our schemes, the Problem schema, and every route's generic problem responses."""
    components = document.setdefault("components", {})
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if method not in ("get", "put", "post", "patch", "delete"):
                continue
            bearer, admin, merchant = _securities(operation)
            responses = operation.setdefault("responses", {})
            for status, response in list(responses.items()):
                if CODES_KEY in response:
                    names = response.pop(CODES_KEY)
                    responses[status] = _response(
                        int(status), [lookup((int(status), n)) for n in names]
                    )
            if bearer or merchant:
                names = ["UNAUTHORIZED", "INVALID_TOKEN"]  # a token sent is checked
                names += ["INVALID_MERCHANT_KEY"] if merchant else []
                _add(responses, 401, [lookup((401, n)) for n in names])
            if admin and not merchant:
                _add(responses, 403, [lookup((403, "FORBIDDEN"))])
            if _takes_input(operation):
                _add(responses, 422, [lookup((422, "VALIDATION_ERROR"))])
            if path not in INTERNAL_PATHS:  # the gateway's limits per client address
                _add(responses, 429, [lookup((429, "RATE_LIMITED"))])
            _add(responses, 503, [lookup((503, "SERVICE_UNAVAILABLE"))])
            for status, response in responses.items():
                _problem_only(response)
                responses[status] = _shared(response, components)
            operation["responses"] = dict(sorted(responses.items()))
    schemas = components.setdefault("schemas", {})
    for fastapi_default in ("HTTPValidationError", "ValidationError"):
        schemas.pop(fastapi_default, None)
    problem_schema = ProblemDetails.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, schema in problem_schema.pop("$defs", {}).items():
        schemas[name] = schema
    schemas["Problem"] = problem_schema
    components["schemas"] = dict(sorted(schemas.items()))
    schemes = components.setdefault("securitySchemes", {})
    if any(name in schemes for name in _SCHEME_NAMES):
        for name in _SCHEME_NAMES:
            schemes.pop(name, None)
        schemes[BEARER] = {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "The `access_token` of POST /api/auth/login. Routes that list the"
            " role `admin` refuse other users' tokens with 403 FORBIDDEN.",
        }
    for name in _MERCHANT_NAMES & set(schemes):
        scheme = schemes.pop(name)
        scheme["description"] = (
            "The shop's credential at the payment provider (never a shopper's token)."
        )
        schemes[MERCHANT] = scheme
    return document


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document, completed (cached on the app as FastAPI does)."""
    if app.openapi_schema is None:
        document = get_openapi(
            title=app.title,
            version=app.version,
            openapi_version=app.openapi_version,
            description=app.description,
            routes=app.routes,
        )
        app.openapi_schema = complete(document)
    return app.openapi_schema


def install(app: FastAPI) -> None:
    """Serve the completed document at the app's /openapi.json and /docs."""
    app.openapi = lambda: openapi_document(app)  # type: ignore[method-assign]
