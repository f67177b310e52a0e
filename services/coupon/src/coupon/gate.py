"""The issue fast lane: plain issue requests are answered before FastAPI routing.

A first-come-first-served burst is thousands of identical requests whose answer comes from the
line (line.py): a place, SOLD_OUT or ALREADY_ISSUED. Routing, dependency injection, request
validation and the exception handlers cost about three times that answer (0.75 ms against
0.23 ms of CPU per request, measured in docs/coupon.md), and under a burst the event loop's
backlog, not the database, is what makes requests wait. So this ASGI middleware serves the
plain case itself: a signed user asking for themselves, no query string, a body that is exactly
`{"user_id": "..."}`. Everything else (no or bad token, an admin acting for someone else,
`?wait=true`, an odd body) goes on to the route in api.py, which is the contract's definition
and gives the same answers the slow way.
"""

import logging
import re
import uuid
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from coupon.api import ISSUE
from coupon.line import Lines
from coupon.schemas import user_coupon_out
from shopkit.auth import TokenVerifier
from shopkit.errors import PROBLEM, Problem, problem_body
from shopkit.limits import Limiter
from shopkit.metrics import ROUTE

log = logging.getLogger("coupon.gate")

ISSUE_PATH = re.compile(r"/api/coupons/([^/]+)/issue")
ISSUE_ROUTE = "/api/coupons/{coupon_id}/issue"
MAX_BODY = 1_000


class IssueFastLane:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = ISSUE_PATH.fullmatch(scope.get("path", "")) if scope["type"] == "http" else None
        if match is None or scope["method"] != "POST" or scope["query_string"]:
            await self.app(scope, receive, send)
            return
        body, complete = b"", False
        while not complete and len(body) <= MAX_BODY:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay(message, receive), send)
                return
            body += message.get("body", b"")
            complete = not message.get("more_body", False)
        user_id = _plain_request(scope, body) if complete else None
        if user_id is None:
            replayed = {"type": "http.request", "body": body, "more_body": not complete}
            await self.app(scope, _replay(replayed, receive), send)
            return
        scope[ROUTE] = ISSUE_ROUTE  # for the HTTP metrics: answered without routing
        status, content, headers = await _issue(scope, match.group(1), user_id)
        await _respond(scope, send, status, content, headers)


def _plain_request(scope: Scope, body: bytes) -> str | None:
    """The user id of a signed user's request for themselves, or None to let the route decide."""
    user_id = _user_id(body)
    token = _bearer(scope)
    if user_id is None or token is None:
        return None
    verifier: TokenVerifier = scope["app"].state.verifier
    try:
        principal = verifier.verify(token)
    except Problem:
        return None
    return user_id if principal.user_id == user_id else None


async def _issue(scope: Scope, coupon_id: str, user_id: str) -> tuple[int, bytes, dict[str, str]]:
    state = scope["app"].state
    lines: Lines = state.lines
    limits: Limiter = state.limits
    try:
        limits.take(ISSUE, user_id)
        held = await lines.take_place(coupon_id=coupon_id, user_id=user_id, now=state.clock())
    except Problem as problem:
        body = problem_body(problem.status, problem.code, problem.title, problem.detail)
        return problem.status, orjson.dumps(body), problem.headers
    except Exception:
        log.exception("unhandled error")
        body = problem_body(500, "INTERNAL_ERROR", "Internal error", "unexpected error; logged")
        return 500, orjson.dumps(body), {}
    return 202, user_coupon_out(held, state.clock()).model_dump_json().encode(), {}


def _user_id(body: bytes) -> str | None:
    try:
        parsed: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(parsed, dict) or parsed.keys() != {"user_id"}:
        return None
    user_id = parsed["user_id"]
    return user_id if isinstance(user_id, str) and 1 <= len(user_id) <= 36 else None


def _bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return (token.strip() or None) if scheme.lower() == "bearer" else None
    return None


def _replay(first: Message, receive: Receive) -> Receive:
    """A receive that hands out the already-read message first, then the real stream."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return first
        return await receive()

    return replay


async def _respond(
    scope: Scope, send: Send, status: int, content: bytes, extra: dict[str, str]
) -> None:
    headers = dict(scope["headers"])
    correlation = (headers.get(b"x-correlation-id") or headers.get(b"x-request-id") or b"")[:100]
    content_type = b"application/json" if status < 400 else PROBLEM.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(content)).encode()),
                (b"x-correlation-id", correlation or str(uuid.uuid4()).encode()),
                *((name.lower().encode(), value.encode()) for name, value in extra.items()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": content})
