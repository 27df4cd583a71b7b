"""Cursor pagination: ``?limit=&cursor=`` answers ``{"items": [...], "next_cursor": ...}``."""

from __future__ import annotations

import base64
import json
from datetime import date, datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy import ColumnElement, and_, or_

from shared.errors import Problem

T = TypeVar("T")

MAX_LIMIT = 200


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


def encode_cursor(*values: Any) -> str:
    raw = json.dumps([str(v) for v in values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _invalid() -> Problem:
    return Problem(
        422,
        "validation_failed",
        "分页游标无效",
        "Invalid cursor",
        errors=[{"field": "cursor", "message": "分页游标无效"}],
    )


def cursor_time(value: str) -> datetime:
    """A timestamp taken from a decoded cursor."""
    try:
        return datetime.fromisoformat(value)
    except ValueError as e:
        raise _invalid() from e


def cursor_date(value: str) -> date:
    """A date taken from a decoded cursor."""
    try:
        return date.fromisoformat(value)
    except ValueError as e:
        raise _invalid() from e


def after_time_cursor(
    cursor: str | None, time_col: Any, id_col: Any, *, newest_first: bool = False
) -> ColumnElement[bool] | None:
    """The keyset condition for a list ordered by (time, id): the rows after the cursor made
    by ``encode_cursor(time.isoformat(), id)``; None on the first page."""
    after = decode_cursor(cursor, 2)
    if not after:
        return None
    at, last_id = cursor_time(after[0]), after[1]
    if newest_first:
        return or_(time_col < at, and_(time_col == at, id_col < last_id))
    return or_(time_col > at, and_(time_col == at, id_col > last_id))


def decode_cursor(cursor: str | None, arity: int) -> list[str] | None:
    if not cursor:
        return None
    try:
        if len(cursor) > 1000:
            raise ValueError("cursor too long")
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded))
        if not isinstance(values, list) or len(values) != arity:
            raise ValueError
        return [str(v) for v in values]
    except (ValueError, RecursionError) as e:
        raise _invalid() from e
