"""RFC 9457 problem details with stable codes; never a 500 for what a client can send."""

import logging
from typing import Any

import asyncpg
from aiokafka.errors import KafkaError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from shopkit.faults import StillUnavailable, is_transient

log = logging.getLogger("shopkit.errors")

PROBLEM = "application/problem+json"
# What a 503 asks a client to wait: a database restart or a broker election takes seconds.
RETRY_AFTER_S = 2

_UNSTORABLE_TEXT = (
    asyncpg.exceptions.CharacterNotInRepertoireError,
    asyncpg.exceptions.UntranslatableCharacterError,
)

_STATUS_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMITED",
    503: "SERVICE_UNAVAILABLE",
}


class Problem(Exception):
    """Raise anywhere in a request to answer with problem+json."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str | None = None,
        *,
        title: str | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or code)
        self.status = status
        self.code = code
        self.detail = detail
        self.title = title or code.replace("_", " ").capitalize()
        self.extra = extra or {}
        self.headers = headers or {}  # e.g. Retry-After on 429 and 503


def problem_body(
    status: int, code: str, title: str, detail: str | None = None, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"https://shop.local/problems/{code.lower().replace('_', '-')}",
        "title": title,
        "status": status,
        "code": code,
    }
    if detail is not None:
        body["detail"] = detail
    body.update(extra)
    return body


def problem_response(
    status: int, code: str, detail: str | None = None, *, title: str | None = None, **extra: Any
) -> JSONResponse:
    title = title or code.replace("_", " ").capitalize()
    return JSONResponse(
        problem_body(status, code, title, detail, **extra), status_code=status, media_type=PROBLEM
    )


# A route can name the code its validation failures carry, e.g. {"amount": "INVALID_AMOUNT"}:
# the first failing field that has a code decides; otherwise the code is VALIDATION_ERROR.
# A body field named `amount` is money in every service: its own code, wherever it fails.
VALIDATION_CODES: dict[str, str] = {"amount": "INVALID_AMOUNT"}


def _validation_code(errors: list[dict[str, Any]]) -> str:
    for error in errors:
        for part in reversed(error.get("loc", ())):
            if isinstance(part, str) and part in VALIDATION_CODES:
                return VALIDATION_CODES[part]
    return "VALIDATION_ERROR"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(_: Request, exc: Problem) -> JSONResponse:
        response = problem_response(exc.status, exc.code, exc.detail, title=exc.title, **exc.extra)
        response.headers.update(exc.headers)
        if exc.status == 503 and "Retry-After" not in exc.headers:
            response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
        return problem_response(422, _validation_code(errors), detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "ERROR")
        detail = exc.detail if isinstance(exc.detail, str) else None
        response = problem_response(exc.status_code, code, detail)
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    # What a dependency raises when it is away: the database through asyncpg or the pools, the
    # network, the broker. Each is a 503 when it is transient, else a bug (500). Handled here,
    # not by the catch-all below, which Starlette re-raises to the server after answering.
    for dependency_error in _DEPENDENCY_ERRORS:
        app.add_exception_handler(dependency_error, _dependency_handler)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        if is_transient(exc):  # e.g. wrapped by code on the way up
            return unavailable(exc)
        log.exception("unhandled error", exc_info=exc)
        return problem_response(500, "INTERNAL_ERROR", "unexpected error; it has been logged")


_DEPENDENCY_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,  # a pooled connection whose backend ended while it sat idle
    OSError,  # refused, reset, timed out (TimeoutError is one)
    KafkaError,
    StillUnavailable,
)


async def _dependency_handler(_: Request, exc: Exception) -> JSONResponse:
    return _dependency_failed(exc)


def _dependency_failed(exc: Exception) -> JSONResponse:
    # Text PostgreSQL cannot store (a NUL character) is the client's input, not our fault.
    if isinstance(exc, _UNSTORABLE_TEXT):
        return problem_response(422, "INVALID_CHARACTER", "text contains a NUL character")
    if is_transient(exc):
        return unavailable(exc)
    log.exception("unhandled error", exc_info=exc)
    return problem_response(500, "INTERNAL_ERROR", "unexpected error; it has been logged")


def unavailable(exc: BaseException) -> JSONResponse:
    """503 SERVICE_UNAVAILABLE with Retry-After: the database or the broker is away or busy
    for a moment, and the same request will work again once it answers."""
    log.warning("dependency unavailable", extra={"fields": {"error": repr(exc)}})
    response = problem_response(
        503, "SERVICE_UNAVAILABLE", "a dependency is unavailable for a moment; retry shortly"
    )
    response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response
