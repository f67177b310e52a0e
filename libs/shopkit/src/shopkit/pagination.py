"""Opaque keyset cursors and the `{items, next_cursor}` page shape."""

import base64
from typing import Annotated, Any, Generic, TypeVar

import orjson
from fastapi import Query
from pydantic import BaseModel

from shopkit.errors import Problem

T = TypeVar("T")

Limit = Annotated[int, Query(ge=1, le=100, description="page size (default 20, max 100)")]
Cursor = Annotated[str | None, Query(description="opaque cursor from a previous page")]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(values)).decode().rstrip("=")


def decode_cursor(cursor: str | None, *, size: int) -> list[Any] | None:
    """The keyset values a cursor holds; 422 INVALID_CURSOR when it is not one of ours."""
    if cursor is None:
        return None
    try:
        values = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError as exc:
        raise Problem(422, "INVALID_CURSOR", "cursor is not valid") from exc
    if not isinstance(values, list) or len(values) != size:
        raise Problem(422, "INVALID_CURSOR", "cursor is not valid")
    return values
