"""POST /api/coupons/{coupon_id}/issue, answered before FastAPI routing: its only implementation.

A first-come-first-served burst is thousands of requests whose answer comes from the issue
queue: a place, SOLD_OUT or ALREADY_ISSUED. FastAPI's routing, dependency injection, validation
and exception handlers would cost about three times that answer, and under a burst the event
loop's backlog, not the database, is what makes requests wait. So this ASGI middleware is the
route, for every request to it: it applies the checks FastAPI would apply to the declaration in
api.py (which exists for the OpenAPI document only), in FastAPI's order: the body's JSON, the
bearer token, the `wait` query and the body's fields, self-or-admin, the issue limit, then the
queue. What fails on the way (a validation error, a database away) is answered by the app's own
exception handlers, so it reads as on any other route; the refusals a burst is made of are
written here directly. It sits outside the generic HTTP metrics middleware and times itself
into the same series, its status known without wrapping `send`.
"""

import email.message
import inspect
import json
import re
import time
import uuid
from typing import Any, NamedTuple

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from coupon import issuing
from coupon.issue_queue import UserCouponDetail
from coupon.schemas import IssueIn, user_coupon_out
from shopkit.auth import Principal, TokenVerifier
from shopkit.errors import PROBLEM, RETRY_AFTER_S, Problem, problem_body
from shopkit.logs import correlation_id

ISSUE_PATH = re.compile(r"/api/coupons/([^/]+)/issue")
ISSUE_ROUTE = "/api/coupons/{coupon_id}/issue"
# The limiter's action for issue requests, counted per user.
ISSUE = "coupon-issue"
MAX_USER_ID = 36  # IssueIn's bound, checked here without pydantic on the plain path

_BODY = TypeAdapter(IssueIn)
_WAIT = TypeAdapter(bool)
_JSON = b"application/json"


class Answer(NamedTuple):
    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]]  # besides the correlation id


class IssueEndpoint:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = ISSUE_PATH.fullmatch(scope["path"]) if scope["type"] == "http" else None
        if match is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        app: FastAPI = scope["app"]
        correlation = _correlation(scope["headers"])
        context = correlation_id.set(correlation)
        try:
            try:
                answer = await _issue(app, scope, receive, match.group(1))
            except Problem as problem:
                answer = _problem(problem)
            except Exception as exc:
                answer = await _handled(app, scope, exc)
            if answer is None:
                return  # the client went away before its body arrived
            await send(
                {
                    "type": "http.response.start",
                    "status": answer.status,
                    "headers": [*answer.headers, (b"x-correlation-id", correlation.encode())],
                }
            )
            await send({"type": "http.response.body", "body": answer.body})
            seconds = time.perf_counter() - started
            app.state.metrics.observe("POST", ISSUE_ROUTE, answer.status, seconds)
        finally:
            correlation_id.reset(context)


async def _issue(app: FastAPI, scope: Scope, receive: Receive, coupon_id: str) -> Answer | None:
    state = app.state
    body = await _body(receive)
    if body is None:
        return None
    document = _document(scope["headers"], body)
    principal = _principal(state.verifier, scope["headers"])
    wait, user_id = _arguments(scope["query_string"], document)
    principal.require_self_or_admin(user_id)
    state.limits.take(ISSUE, user_id)
    settings, queue = state.settings, state.issue_queue
    held = await issuing.issue_coupon(
        queue,
        coupon_id=coupon_id,
        user_id=user_id,
        vouched=principal.user_id == user_id,
        user_wait_seconds=settings.user_wait_seconds,
        now=state.clock(),
    )
    status = 202
    if wait:
        held = await state.settlements.wait(queue, held, timeout=settings.issue_wait_seconds)
        status = _settled(held)
    content = user_coupon_out(held, state.clock()).model_dump_json().encode()
    return Answer(status, content, _headers(_JSON, content))


def _settled(held: UserCouponDetail) -> int:
    if held.row.status == "REJECTED":
        raise Problem(409, "SOLD_OUT", "every coupon has been taken")
    return 202 if held.row.status == "PENDING" else 201


async def _body(receive: Receive) -> bytes | None:
    chunks, more = [], True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


_NO_BODY = object()


def _document(headers: list[tuple[bytes, bytes]], body: bytes) -> Any:
    """The body as FastAPI reads it: JSON when the content type says so, else the bytes."""
    if not body:
        return _NO_BODY
    content_type = _header(headers, b"content-type")
    if content_type != _JSON and not _is_json(content_type):
        return body
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass  # stricter than json: its verdict and error are the ones FastAPI gives
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        error = {
            "type": "json_invalid",
            "loc": ("body", exc.pos),
            "msg": "JSON decode error",
            "input": {},
            "ctx": {"error": exc.msg},
        }
        raise RequestValidationError([error], body=exc.doc) from exc
    except Exception as exc:
        raise HTTPException(400, "There was an error parsing the body") from exc


def _is_json(content_type: bytes | None) -> bool:
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type.decode("latin-1")
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


def _principal(verifier: TokenVerifier, headers: list[tuple[bytes, bytes]]) -> Principal:
    """The bearer token's principal, read as shopkit.auth's dependency reads it."""
    authorization = (_header(headers, b"authorization") or b"").decode("latin-1")
    scheme, _, credentials = authorization.partition(" ")
    if not (scheme and credentials.strip()) or scheme.lower() != "bearer":
        raise Problem(401, "UNAUTHORIZED", "missing bearer token")
    return verifier.verify(credentials.strip())


def _arguments(query_string: bytes, document: Any) -> tuple[bool, str]:
    """`wait` and the body's user id; 422 with the query's errors, then the body's."""
    wait_text = QueryParams(query_string).get("wait") if query_string else None
    user_id = _plain_user_id(document)
    if wait_text is None and user_id is not None:
        return False, user_id
    errors: list[dict[str, Any]] = []
    wait = False
    if wait_text is not None:
        wait = _validated(_WAIT, wait_text, ("query", "wait"), errors)
    if user_id is None:
        body = None if document is _NO_BODY else document
        issue = _validated(_BODY, body, ("body",), errors, missing=document is _NO_BODY)
        user_id = issue.user_id if issue is not None else None
    if errors or user_id is None:
        raise RequestValidationError(errors)
    return wait, user_id


def _plain_user_id(document: Any) -> str | None:
    """The user id of a body that is exactly {"user_id": "<1 to 36 characters>"}."""
    if not isinstance(document, dict) or len(document) != 1:
        return None
    user_id = document.get("user_id")
    return user_id if isinstance(user_id, str) and 1 <= len(user_id) <= MAX_USER_ID else None


def _validated(
    adapter: TypeAdapter[Any],
    value: Any,
    loc: tuple[str, ...],
    errors: list[dict[str, Any]],
    *,
    missing: bool = False,
) -> Any:
    if missing:
        errors.append({"type": "missing", "loc": loc, "msg": "Field required", "input": None})
        return None
    try:
        return adapter.validate_python(value, from_attributes=True)
    except ValidationError as exc:
        errors += [{**e, "loc": (*loc, *e["loc"])} for e in exc.errors(include_url=False)]
        return None


def _problem(problem: Problem) -> Answer:
    """The Problem handler's answer, written without a Response object (the burst's refusals)."""
    content = orjson.dumps(
        problem_body(problem.status, problem.code, problem.title, problem.detail, **problem.extra)
    )
    extra = dict(problem.headers)
    if problem.status == 503:
        extra.setdefault("Retry-After", str(RETRY_AFTER_S))
    headers = _headers(PROBLEM.encode(), content)
    headers += [(name.lower().encode(), value.encode()) for name, value in extra.items()]
    return Answer(problem.status, content, headers)


async def _handled(app: FastAPI, scope: Scope, exc: Exception) -> Answer:
    """What the app's exception handler for `exc` answers (the nearest class wins)."""
    handler = next(filter(None, map(app.exception_handlers.get, type(exc).__mro__)), None)
    if handler is None:
        raise exc
    response = handler(Request(scope), exc)
    if inspect.isawaitable(response):
        response = await response
    return Answer(response.status_code, bytes(response.body), list(response.raw_headers))


def _headers(content_type: bytes, content: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", content_type), (b"content-length", str(len(content)).encode())]


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def _correlation(headers: list[tuple[bytes, bytes]]) -> str:
    """The caller's correlation id as CorrelationMiddleware reads it, or a new one."""
    named = dict(headers)
    given = named.get(b"x-correlation-id") or named.get(b"x-request-id") or b""
    return given.decode(errors="replace")[:100] or str(uuid.uuid4())
