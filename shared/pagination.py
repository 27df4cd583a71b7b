"""Cursor pagination: ``?limit=&cursor=`` answers ``{"items": [...], "next_cursor": ...}``."""

from __future__ import annotations

import base64
import json
from datetime import date, datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

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
