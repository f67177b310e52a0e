"""Problem codes: each defined once (here for the kit and the gateway, in a service's api.py
for its own), with its status, meaning and an example detail; routes name theirs with
`problems(...)` in `responses=`, and the OpenAPI document (shopkit.openapi), docs/errors.md and
the gateway's merged document are made from the same.
"""

from dataclasses import dataclass
from typing import Any

from shopkit.errors import problem_body

Responses = dict[int | str, dict[str, Any]]


@dataclass(frozen=True)
class Code:
    """A problem code: the status it comes with, what it means, and a detail as sent."""

    code: str
    status: int
    meaning: str
    example: str
    source: str  # who answers it: "kit", a service, or "gateway"


# (status, code) -> Code: the same code may come with two statuses (PRODUCT_NOT_FOUND is a 404
# on a product read and a 409 on a modify that names a product that is gone).
CODES: dict[tuple[int, str], Code] = {}


def define(source: str, *codes: tuple[int, str, str, str]) -> None:
    """Document problem codes: (status, CODE, meaning, example detail) each."""
    for status, code, meaning, example in codes:
        known = CODES.get((status, code))
        if known is not None and known.source == "kit" and source != "kit":
            continue  # a kit code a service names again keeps the kit's words
        if known is not None and (known.meaning, known.example) != (meaning, example):
            # One code, one meaning: else the merged document would depend on import order.
            raise ValueError(
                f"{code} ({status}) is defined differently by {known.source} and {source}"
            )
        CODES[(status, code)] = Code(code, status, meaning, example, source)


def lookup(code: str | tuple[int, str]) -> Code:
    if isinstance(code, tuple):
        return CODES[code]
    found = [c for (_, name), c in CODES.items() if name == code]
    if len(found) != 1:
        raise KeyError(f"problem code {code!r} is {'ambiguous' if found else 'not defined'}")
    return found[0]


def example_of(code: Code) -> dict[str, Any]:
    body = problem_body(code.status, code.code, code.code.replace("_", " ").capitalize())
    body["detail"] = code.example
    return body


# Where `problems` leaves a route's codes until the document is made: a module may name a code
# (with its status) that another module of its service defines later.
CODES_KEY = "x-problem-codes"


def problems(*codes: str | tuple[int, str]) -> Responses:
    """`responses=` of a route: its problem codes, grouped by status, one example each."""
    by_status: dict[int, list[str]] = {}
    for named in codes:
        status, code = named if isinstance(named, tuple) else (lookup(named).status, named)
        by_status.setdefault(status, []).append(code)
    return {status: {"description": "", CODES_KEY: names} for status, names in by_status.items()}


define(
    "kit",
    (400, "BAD_REQUEST", "The request could not be read (e.g. malformed JSON).", "bad request"),
    (
        401,
        "UNAUTHORIZED",
        "No credential was sent: a bearer token (or the merchant key).",
        "missing bearer token",
    ),
    (
        401,
        "INVALID_TOKEN",
        "The bearer token is malformed, forged, expired or not this shop's.",
        "Signature has expired",
    ),
    (
        403,
        "FORBIDDEN",
        "Not yours (another user's resource) or admin only.",
        "you may act only on your own resources",
    ),
    (404, "NOT_FOUND", "No such route.", "Not Found"),
    (405, "METHOD_NOT_ALLOWED", "The route exists but not with this method.", "Method Not Allowed"),
    (409, "CONFLICT", "A state conflict without a more precise code.", "Conflict"),
    (
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        "The body is not in a media type the route reads.",
        "Unsupported Media Type",
    ),
    (
        422,
        "VALIDATION_ERROR",
        "The request does not match its schema (unknown fields included);"
        " `errors` lists each failing field.",
        "body.items: List should have at least 1 item after validation, not 0",
    ),
    (
        422,
        "INVALID_CHARACTER",
        "Text contains a character PostgreSQL cannot store (NUL).",
        "text contains a NUL character",
    ),
    (
        422,
        "INVALID_AMOUNT",
        "`amount` is not a positive integer in the route's range (its schema gives the bounds).",
        "body.amount: Input should be greater than 0",
    ),
    (422, "INVALID_CURSOR", "`cursor` is not one this list handed out.", "cursor is not valid"),
    (
        422,
        "IDEMPOTENCY_KEY_REUSED",
        "This Idempotency-Key was used with another body.",
        "this key was used with another body",
    ),
    (
        422,
        "INVALID_IDEMPOTENCY_KEY",
        "Idempotency-Key must be 1..200 characters.",
        "Idempotency-Key must be 1..200 characters",
    ),
    (
        409,
        "IDEMPOTENCY_IN_PROGRESS",
        "A request with this Idempotency-Key is still running.",
        "a request with this key is running",
    ),
    (
        429,
        "RATE_LIMITED",
        "An abuse limit was reached (per client address at the gateway, per"
        " account in the service); nothing was done. Retry after `Retry-After` seconds.",
        "too many requests; retry in 12 s",
    ),
    (
        500,
        "INTERNAL_ERROR",
        "A bug: never an answer to what a client sends. It is logged.",
        "unexpected error; it has been logged",
    ),
    (
        503,
        "SERVICE_UNAVAILABLE",
        "A database or the broker is away for a moment (or the wallet's"
        " password hashing is saturated); retry after `Retry-After` seconds.",
        "a dependency is unavailable for a moment; retry shortly",
    ),
    (
        503,
        "NOT_READY",
        "/ready of a service (not behind the gateway): a dependency is away or"
        " the outbox is falling behind.",
        "the oldest unsent outbox message is 75 s old",
    ),
    (404, "DEAD_LETTER_NOT_FOUND", "No dead letter with this id.", "no dead letter with this id"),
    (
        409,
        "DEAD_LETTER_NOT_DEAD",
        "The letter was redriven already.",
        "this letter is REDRIVING: it was redriven already",
    ),
    (
        409,
        "DEAD_LETTER_NOT_REDRIVABLE",
        "The record was not a message envelope at all.",
        "the record was not a message envelope at all",
    ),
    (
        409,
        "DEAD_LETTER_TOO_OLD",
        "Other consumers of the topic no longer remember the message and would apply it again.",
        "its message is older than 13 days: other consumers of the"
        " topic no longer remember it and would apply it again",
    ),
)
define(
    "gateway",
    (413, "PAYLOAD_TOO_LARGE", "The request body exceeds 1 MiB.", "request body exceeds 1 MiB"),
)
