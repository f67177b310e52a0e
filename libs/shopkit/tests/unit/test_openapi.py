"""shopkit.openapi completes a service's document: our schemes, problem responses with the
stable codes and an example each, FastAPI's validation shape replaced, shared responses once."""

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel

from shopkit import openapi
from shopkit.auth import AdminPrincipal, CurrentPrincipal
from shopkit.openapi import CODES, define, problems


@pytest.fixture(autouse=True)
def test_code() -> Iterator[None]:
    """A code of this test's own, gone afterwards: the shop's catalogue must not list it."""
    define("test", (409, "TEST_CONFLICT", "A test's conflict.", "it conflicts"))
    yield
    del CODES[(409, "TEST_CONFLICT")]


class Body(BaseModel):
    name: str


def app() -> FastAPI:
    router = APIRouter(prefix="/api")

    @router.get("/things/{thing_id}", responses=problems("FORBIDDEN", "TEST_CONFLICT"))
    async def read(thing_id: str, _: CurrentPrincipal) -> dict[str, str]:
        return {}

    @router.post("/things", status_code=201)
    async def create(body: Body, _: AdminPrincipal) -> dict[str, str]:
        return {}

    @router.get("/open")
    async def open_route() -> dict[str, str]:
        return {}

    service = FastAPI()
    service.include_router(router)
    openapi.install(service)
    return service


def responses(document: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    found = document["paths"][path][method]["responses"]
    shared = document["components"].get("responses", {})
    return {
        status: shared[r["$ref"].rsplit("/", 1)[1]] if "$ref" in r else r
        for status, r in found.items()
    }


def examples(response: dict[str, Any]) -> dict[str, Any]:
    return response["content"][openapi.PROBLEM]["examples"]  # type: ignore[no-any-return]


def test_a_protected_route_gets_its_codes_and_the_generic_ones() -> None:
    document = app().openapi()
    read = responses(document, "/api/things/{thing_id}", "get")
    assert document["paths"]["/api/things/{thing_id}"]["get"]["security"] == [{"bearer": []}]
    assert set(read) == {"200", "401", "403", "409", "422", "429", "503"}
    assert set(examples(read["401"])) == {"UNAUTHORIZED", "INVALID_TOKEN"}
    conflict = examples(read["409"])["TEST_CONFLICT"]["value"]
    assert conflict == {
        "type": "https://shop.local/problems/test-conflict",
        "title": "Test conflict",
        "status": 409,
        "code": "TEST_CONFLICT",
        "detail": "it conflicts",
    }
    assert "Retry-After" in read["503"]["headers"] and "Retry-After" in read["429"]["headers"]


def test_admin_routes_name_the_role_and_fastapis_422_is_replaced() -> None:
    document = app().openapi()
    create = responses(document, "/api/things", "post")
    assert document["paths"]["/api/things"]["post"]["security"] == [{"bearer": ["admin"]}]
    assert set(examples(create["403"])) == {"FORBIDDEN"}
    assert set(create["422"]["content"]) == {openapi.PROBLEM}
    assert create["422"]["content"][openapi.PROBLEM]["schema"] == {
        "$ref": "#/components/schemas/Problem"
    }
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "Problem" in schemas
    assert set(document["components"]["securitySchemes"]) == {"bearer"}


def test_a_public_route_without_input_gets_only_429_and_503() -> None:
    open_route = responses(app().openapi(), "/api/open", "get")
    assert set(open_route) == {"200", "429", "503"}


def test_a_code_names_its_status_once() -> None:
    assert CODES[(409, "TEST_CONFLICT")].source == "test"
    assert set(problems("TEST_CONFLICT")) == {409}
