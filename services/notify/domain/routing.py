"""Routing as data: event type -> template, recipient and channels; rendering that never fails."""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared import money


@dataclass(frozen=True)
class Route:
    event: str
    template: str
    recipient: str  # the data field holding the recipient's person id
    channels: tuple[str, ...]
    title: str
    body: str
    sms: str


def parse_routes(raw: dict[str, Any]) -> dict[str, list[Route]]:
    routes: dict[str, list[Route]] = {}
    for r in raw.get("routes", []):
        route = Route(
            event=r["event"],
            template=r["template"],
            recipient=r["recipient"],
            channels=tuple(r["channels"]),
            title=r["title"],
            body=r["body"],
            sms=r.get("sms", r["body"]),
        )
        routes.setdefault(route.event, []).append(route)
    return routes


def yuan(value: Any) -> str:
    """An amount in integer fen as yuan with two decimals, exactly: 12345 -> "123.45".

    Events carry money as fen (never a float); only the text a person reads is in yuan.
    Anything that is not a whole number of fen is rendered as it is.
    """
    if isinstance(value, bool):
        return str(value)
    try:
        fen = int(value) if isinstance(value, int | str) else None
    except ValueError:
        fen = None
    return str(value) if fen is None else money.yuan(fen)


# Template filters: ``{name|filter}`` applies ``filter`` to the value of ``name``.
FILTERS: dict[str, Callable[[Any], str]] = {"yuan": yuan}


class _Lenient(string.Formatter):
    """A missing variable, attribute or index renders empty; a bad format spec renders plain;
    an unknown filter leaves the value as it is."""

    def get_value(self, key: int | str, args: Any, kwargs: Any) -> Any:
        return "" if isinstance(key, int) else kwargs.get(key, "")

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> Any:
        name, bar, filter_name = field_name.partition("|")
        try:
            value, first = super().get_field(name, args, kwargs)
        except (KeyError, AttributeError, IndexError, TypeError):
            return "", field_name
        if value is None:  # an optional field the event left empty
            return "", first
        if bar and value != "" and filter_name.strip() in FILTERS:
            value = FILTERS[filter_name.strip()](value)
        return value, first

    def format_field(self, value: Any, format_spec: str) -> str:
        try:
            return str(super().format_field(value, format_spec))
        except (ValueError, TypeError):
            return str(value)


def render(template: str, values: dict[str, Any]) -> str:
    """Fill ``{name}`` and ``{name|filter}`` variables. Never raises: a message with a gap
    beats no message."""
    try:
        return _Lenient().vformat(template, (), values)
    except ValueError:  # a stray brace in a county-edited template: send it as written
        return template
