"""Routing as data: event type -> template, recipient and channels; rendering that never fails."""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any


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


class _Lenient(string.Formatter):
    """A missing variable, attribute or index renders empty; a bad format spec renders plain."""

    def get_value(self, key: int | str, args: Any, kwargs: Any) -> Any:
        return "" if isinstance(key, int) else kwargs.get(key, "")

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> Any:
        try:
            return super().get_field(field_name, args, kwargs)
        except (KeyError, AttributeError, IndexError, TypeError):
            return "", field_name

    def format_field(self, value: Any, format_spec: str) -> str:
        try:
            return str(super().format_field(value, format_spec))
        except (ValueError, TypeError):
            return str(value)


def render(template: str, values: dict[str, Any]) -> str:
    """Fill ``{name}`` variables. Never raises: a message with a gap beats no message."""
    try:
        return _Lenient().vformat(template, (), values)
    except ValueError:  # a stray brace in a county-edited template: send it as written
        return template
