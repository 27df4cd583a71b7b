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


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""


def render(template: str, values: dict[str, Any]) -> str:
    """Fill ``{name}`` variables; an unknown or missing one renders as empty text."""
    return string.Formatter().vformat(template, (), _Blank(values))
