"""Routing as data (routing.toml): which event tells whom what, on which channels; and the
rendering of template text, which never fails.

``parse_routing`` is strict: a county's edit with a mistake is refused whole, naming the place
(``routes[3].recipients[1]: ...``), when the service starts rather than when the first event
arrives. ``render`` is lenient: a message with a gap beats no message.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from shared import money
from shared.clock import SHANGHAI

CHANNELS = ("app", "sms", "wechat", "webhook")
STAFF_ROLES = (
    "village_agent",
    "village_worker",
    "township_officer",
    "county_officer",
)


@dataclass(frozen=True)
class Category:
    code: str
    name: str
    critical: bool = False  # ignores quiet hours


@dataclass(frozen=True)
class Recipients:
    """Who a route tells: residents by a person-id field, staff by a sub field, or every
    officer of a role responsible for a prefix of a region field."""

    kind: Literal["person", "staff", "officers"]
    field: str  # the event data field (person id(s), a sub, or a region code)
    role: str | None = None  # officers only
    digits: int | None = None  # officers only: 6 county, 9 township, 12 village


@dataclass(frozen=True)
class Route:
    event: str
    template: str
    category: str
    channels: tuple[str, ...]
    recipients: tuple[Recipients, ...]
    when: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    important: bool = False
    digest: str | None = None

    def applies_to(self, data: Mapping[str, Any]) -> bool:
        return all(str(data.get(k)) in values for k, values in self.when.items())


@dataclass(frozen=True)
class Routing:
    categories: dict[str, Category]
    routes: dict[str, list[Route]]  # by event type, in file order

    def for_event(self, event_type: str, data: Mapping[str, Any]) -> list[Route]:
        return [r for r in self.routes.get(event_type, []) if r.applies_to(data)]

    def templates(self) -> dict[str, list[str]]:
        """Each template code and the event types routed to it."""
        out: dict[str, list[str]] = {}
        for event, routes in self.routes.items():
            for r in routes:
                if event not in out.setdefault(r.template, []):
                    out[r.template].append(event)
        return out


def _fail(where: str, message: str) -> ValueError:
    return ValueError(f"{where}: {message}")


def _keys(raw: Any, where: str, required: set[str], optional: set[str]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise _fail(where, "expected a table")
    missing = required - raw.keys()
    if missing:
        raise _fail(where, f"missing {', '.join(sorted(missing))}")
    unknown = raw.keys() - required - optional
    if unknown:
        raise _fail(where, f"unknown key(s) {', '.join(sorted(unknown))}")
    return raw


def _code(raw: Any, where: str) -> str:
    if (
        not isinstance(raw, str)
        or not raw
        or not all(c.islower() or c.isdigit() or c == "_" for c in raw)
    ):
        raise _fail(where, f"{raw!r} is not a code (lower case letters, digits, _)")
    return raw


def _text(raw: Any, where: str) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise _fail(where, "expected a non-empty string")
    return raw


def _recipients(raw: Any, where: str) -> Recipients:
    if isinstance(raw, dict) and "officers" in raw:
        r = _keys(raw, where, {"officers", "region", "digits"}, set())
        if r["officers"] not in STAFF_ROLES:
            raise _fail(f"{where}.officers", f"one of {', '.join(STAFF_ROLES)}")
        if r["digits"] not in (6, 9, 12):
            raise _fail(f"{where}.digits", "6 (county), 9 (township) or 12 (village)")
        return Recipients(
            "officers", _text(r["region"], f"{where}.region"), r["officers"], r["digits"]
        )
    for kind in ("person", "staff"):
        if isinstance(raw, dict) and kind in raw:
            r = _keys(raw, where, {kind}, set())
            return Recipients(kind, _text(r[kind], f"{where}.{kind}"))  # type: ignore[arg-type]
    raise _fail(
        where, 'expected { person = "<field>" }, { staff = "<field>" } or { officers = ... }'
    )


def parse_routing(raw: Any, events: set[str] | None = None) -> Routing:
    """The routing file as data; ``events`` (when given) are the event types notify knows, and
    a route for any other is refused (a typo would otherwise tell nobody, silently)."""
    top = _keys(raw, "routing", {"categories", "routes"}, set())
    categories: dict[str, Category] = {}
    for i, c in enumerate(top["categories"]):
        where = f"categories[{i}]"
        c = _keys(c, where, {"code", "name"}, {"critical"})
        code = _code(c["code"], f"{where}.code")
        if code in categories:
            raise _fail(f"{where}.code", f"{code!r} appears twice")
        critical = c.get("critical", False)
        if not isinstance(critical, bool):
            raise _fail(f"{where}.critical", "expected true or false")
        categories[code] = Category(code, _text(c["name"], f"{where}.name"), critical)
    routes: dict[str, list[Route]] = {}
    for i, r in enumerate(top["routes"]):
        where = f"routes[{i}]"
        r = _keys(
            r,
            where,
            {"event", "template", "category", "channels", "recipients"},
            {"when", "important", "digest"},
        )
        event = _text(r["event"], f"{where}.event")
        if events is not None and event not in events:
            raise _fail(f"{where}.event", f"{event!r} is not an event notify knows")
        if r["category"] not in categories:
            raise _fail(f"{where}.category", f"{r['category']!r} is not a category of this file")
        channels = r["channels"]
        if (
            not isinstance(channels, list)
            or not channels
            or any(c not in CHANNELS for c in channels)
            or len(set(channels)) != len(channels)
        ):
            raise _fail(
                f"{where}.channels", f"a list of distinct channels among {', '.join(CHANNELS)}"
            )
        recipients = r["recipients"]
        if not isinstance(recipients, list) or not recipients:
            raise _fail(f"{where}.recipients", "expected a non-empty list")
        when_raw = r.get("when", {})
        if not isinstance(when_raw, dict) or any(
            not isinstance(v, list) or not v or not all(isinstance(x, str) for x in v)
            for v in when_raw.values()
        ):
            raise _fail(f"{where}.when", 'expected { field = ["value", ...] }')
        important = r.get("important", False)
        if not isinstance(important, bool):
            raise _fail(f"{where}.important", "expected true or false")
        digest = r.get("digest")
        if digest is not None:
            _code(digest, f"{where}.digest")
        route = Route(
            event=event,
            template=_code(r["template"], f"{where}.template"),
            category=r["category"],
            channels=tuple(channels),
            recipients=tuple(
                _recipients(x, f"{where}.recipients[{k}]") for k, x in enumerate(recipients)
            ),
            when={k: tuple(v) for k, v in when_raw.items()},
            important=important,
            digest=digest,
        )
        routes.setdefault(event, []).append(route)
    return Routing(categories, routes)


# -- rendering -------------------------------------------------------------------------------


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


def names(value: Any) -> str:
    """A list of {code, name} (missing materials) as the names joined by 、."""
    if not isinstance(value, list):
        return str(value)
    return "、".join(
        str(v.get("name", v.get("code", ""))) if isinstance(v, dict) else str(v) for v in value
    )


def cn_date(value: Any) -> str:
    """An ISO date (or the date of a datetime) as 2026年6月15日."""
    try:
        d = value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
    except ValueError:
        return str(value)
    return f"{d.year}年{d.month}月{d.day}日"


def local_time(value: Any) -> str:
    """An aware ISO datetime as the Asia/Shanghai wall time: 6月15日 09:00."""
    try:
        t = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if t.tzinfo is None:
        return str(value)
    t = t.astimezone(SHANGHAI)
    return f"{t.month}月{t.day}日 {t:%H:%M}"


# Template filters: ``{name|filter}`` applies ``filter`` to the value of ``name``.
FILTERS: dict[str, Callable[[Any], str]] = {
    "yuan": yuan,
    "names": names,
    "cn_date": cn_date,
    "local_time": local_time,
}


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


def render(template: str, values: Mapping[str, Any]) -> str:
    """Fill ``{name}`` and ``{name|filter}`` variables. Never raises: a message with a gap
    beats no message."""
    try:
        return _Lenient().vformat(template, (), values)
    except ValueError:  # a stray brace in a county-edited template: send it as written
        return template
