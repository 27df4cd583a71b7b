"""Cursor pagination: opaque cursors that round-trip, and a 422 for a cursor we did not make."""

from __future__ import annotations

import base64
import json

import pytest

from shared.errors import Problem
from shared.pagination import Page, decode_cursor, encode_cursor


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_round_trip() -> None:
    """A cursor decodes to the values it was made from, as text."""
    cursor = encode_cursor("2025-10-09T08:00:00+00:00", "0b7c6a1e-id")
    assert decode_cursor(cursor, 2) == ["2025-10-09T08:00:00+00:00", "0b7c6a1e-id"]


def test_non_text_values_come_back_as_text() -> None:
    """Numbers and None are carried as their text."""
    assert decode_cursor(encode_cursor(42, None), 2) == ["42", "None"]


def test_chinese_values_round_trip() -> None:
    """Non-ASCII values survive the trip."""
    assert decode_cursor(encode_cursor("张三"), 1) == ["张三"]


def test_cursor_is_url_safe_and_unpadded() -> None:
    """The cursor goes in a query string as is: no '+', '/', '=' or spaces."""
    for n in range(1, 12):
        cursor = encode_cursor("?" * n, ">" * n)
        assert not set(cursor) & set("+/= "), cursor
        assert decode_cursor(cursor, 2) == ["?" * n, ">" * n]


@pytest.mark.parametrize("cursor", [None, ""])
def test_no_cursor_is_the_first_page(cursor: str | None) -> None:
    """No cursor (or an empty one) means start from the beginning."""
    assert decode_cursor(cursor, 2) is None


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor!!",
        "a",
        "游标",
        b64(b"\xff\xfe\xfd"),
        b64(b"not json"),
        b64(b'{"a": 1}'),
        b64(b'"text"'),
        b64(b"[1, 2, 3]"),
        b64(b"[]"),
        encode_cursor("only-one"),
    ],
    ids=[
        "spaces-and-punctuation",
        "one-char",
        "non-ascii",
        "not-utf8",
        "not-json",
        "object",
        "string",
        "wrong-arity",
        "empty-list",
        "cursor-of-another-list",
    ],
)
def test_garbage_cursor_is_a_422(cursor: str) -> None:
    """A cursor we did not make answers 422 validation_failed on the ``cursor`` field."""
    with pytest.raises(Problem) as e:
        decode_cursor(cursor, 2)
    assert e.value.status == 422
    assert e.value.code == "validation_failed"
    assert e.value.errors == [{"field": "cursor", "message": "分页游标无效"}]
    assert e.value.detail == "分页游标无效"
    assert e.value.detail_en == "Invalid cursor"


def test_deeply_nested_cursor_is_a_422_not_a_500() -> None:
    """A hostile cursor of nested brackets is a client error like any other garbage."""
    with pytest.raises(Problem) as e:
        decode_cursor(b64(b"[" * 100_000), 2)
    assert e.value.status == 422


def test_page_shape() -> None:
    """A page answers ``{"items": [...], "next_cursor": ... | null}``."""
    assert json.loads(Page[int](items=[1, 2]).model_dump_json()) == {
        "items": [1, 2],
        "next_cursor": None,
    }
