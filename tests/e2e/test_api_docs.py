"""The API docs through the gateway: Swagger UI at /api/docs, the checked-in OpenAPI document
at /api/openapi.json and each service's AsyncAPI document, and Try-it-out as a browser does it:
log in as the document says, then call protected routes with the scheme it names."""

import json
from typing import Any

import httpx
import jsonschema
import pytest

from shopdev.stack import SERVICES
from shopdev.testing import repo_root

from .conftest import Stack

pytestmark = pytest.mark.e2e

PROBLEM = "application/problem+json"


def checked_in() -> dict[str, Any]:
    return json.loads((repo_root() / "docs" / "generated" / "openapi.json").read_text())


def conforms(document: dict[str, Any], response: httpx.Response, operation: dict[str, Any]) -> None:
    """The response is one the operation documents, in its documented media type and schema."""
    documented = operation["responses"][str(response.status_code)]
    if "$ref" in documented:
        documented = document["components"]["responses"][documented["$ref"].rsplit("/", 1)[1]]
    media = response.headers["content-type"].split(";")[0]
    schema = documented["content"][media]["schema"]
    jsonschema.validate(response.json(), {**schema, "components": document["components"]})
    if media == PROBLEM:
        assert response.json()["code"] in documented["content"][media]["examples"]


async def test_the_gateway_serves_swagger_ui_and_its_assets(stack: Stack) -> None:
    moved = await stack.client.get("/api/docs")
    page = await stack.client.get("/api/docs/")
    bundle = await stack.client.get("/api/docs/swagger-ui-bundle.js")
    settings = await stack.client.get("/api/docs/swagger-initializer.js")
    style = await stack.client.get("/api/docs/swagger-ui.css")

    assert (moved.status_code, moved.headers["location"]) == (301, "/api/docs/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'src="swagger-ui-bundle.js"' in page.text and 'id="swagger-ui"' in page.text
    assert bundle.status_code == 200 and "javascript" in bundle.headers["content-type"]
    assert "SwaggerUIBundle" in bundle.text and len(bundle.content) > 500_000
    assert '"/api/openapi.json"' in settings.text
    assert style.status_code == 200 and style.headers["content-type"].startswith("text/css")
    # Served from the gateway itself: nothing is fetched from a CDN.
    assert "https://" not in page.text and "https://" not in settings.text


async def test_the_document_served_is_the_checked_in_one(stack: Stack) -> None:
    served = await stack.client.get("/api/openapi.json")
    assert served.status_code == 200
    assert served.headers["content-type"].startswith("application/json")
    assert served.json() == checked_in()


@pytest.mark.parametrize("spec", SERVICES, ids=[s.name for s in SERVICES])
async def test_each_services_asyncapi_document_is_served(stack: Stack, spec: Any) -> None:
    name = spec.name.split("-")[0]
    served = await stack.client.get(f"/api/asyncapi/{name}")
    assert served.status_code == 200, served.text
    assert served.json() == json.loads((repo_root() / spec.directory / "asyncapi.json").read_text())
    assert f"/api/asyncapi/{name}" in checked_in()["info"]["description"]


async def test_try_it_out_after_authorize_works_as_documented(stack: Stack) -> None:
    document = checked_in()
    paths = document["paths"]
    shopper = await stack.new_user(balance=5_000)

    # "Authorize": log in as POST /api/auth/login documents it, and use the scheme it names.
    login_op = paths["/api/auth/login"]["post"]
    login = await stack.client.post(
        "/api/auth/login", json={"email": shopper.email, "password": "e2e-password"}
    )
    conforms(document, login, login_op)
    scheme = document["components"]["securitySchemes"]["bearer"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    authorized = {"Authorization": f"Bearer {login.json()['access_token']}"}

    balance_op = paths["/api/users/{user_id}/balance"]["get"]
    assert balance_op["security"] == [{"bearer": []}]
    url = f"/api/users/{shopper.id}/balance"
    mine = await stack.client.get(url, headers=authorized)
    anonymous = await stack.client.get(url)
    someone_elses = await stack.client.get(
        url.replace(shopper.id, (await stack.new_user()).id), headers=authorized
    )
    for answer in (mine, anonymous, someone_elses):
        conforms(document, answer, balance_op)
    assert (mine.status_code, mine.json()["balance"]) == (200, 5_000)
    assert (anonymous.status_code, someone_elses.status_code) == (401, 403)

    # An admin-only route refuses the shopper with the documented 403; bad input is a
    # documented 422 problem, not FastAPI's validation shape.
    create_op = paths["/api/products"]["post"]
    assert create_op["security"] == [{"bearer": ["admin"]}]
    refused = await stack.client.post("/api/products", json={}, headers=authorized)
    conforms(document, refused, create_op)
    place_op = paths["/api/orders"]["post"]
    invalid = await stack.client.post(
        "/api/orders", json={"user_id": shopper.id, "items": []}, headers=authorized
    )
    conforms(document, invalid, place_op)
    assert (refused.status_code, invalid.status_code) == (403, 422)
