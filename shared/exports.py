"""Bulk exports for the county health bureau (issue 8): the one way a service serves one.

An export is a route ``GET /api/v1/exports/<name>`` that answers one page of rows, in JSON
lines (``format=jsonl``, ``application/x-ndjson``) or CSV (``format=csv``, UTF-8 with a BOM so
spreadsheet programs read the Chinese, a header row of the column names). The rows are
confined to the caller's region (``Principal.region_scope``), optionally narrowed by
``region=`` to a prefix inside it, and masked for the caller's role in the values themselves.

Paging is keyset (never OFFSET): each page is ordered by a stable key, and the next page's
cursor (``shared.pagination.encode_cursor`` of the last row's key) is sent in ``X-Next-Cursor``
and in ``Link: <url>; rel="next"``; both are absent on the last page. Where a table has an
update timestamp, ``updated_since=`` keeps the rows changed at or after it: a client pulling
increments passes the time it *started* its previous pull, so a row changed while that pull
ran is taken again rather than missed.

Column sets are defined once per export (``ExportColumn`` tuples in the service's
``api/exports.py``) and documented in docs/exports.md (``lingju exports``). A column set is a
contract with the bureau: its order is stable, and adding a column at the end is the only
change allowed (never rename, reorder or remove one; a different set is a new export).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import Query, Request, Response

from shared.auth import Principal
from shared.errors import Problem
from shared.pagination import encode_cursor

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10000

ExportFormat = Literal["jsonl", "csv"]
MEDIA_TYPES: dict[str, str] = {
    "jsonl": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
}

# The query parameters every export takes.
Limit = Annotated[
    int, Query(ge=1, le=MAX_LIMIT, description=f"Rows per page (at most {MAX_LIMIT})")
]
Format = Annotated[ExportFormat, Query(description="jsonl (JSON lines) or csv")]
Cursor = Annotated[
    str | None, Query(max_length=1000, description="X-Next-Cursor of the previous page")
]
RegionPrefix = Annotated[
    str | None,
    Query(pattern=r"^\d{2,12}$", description="A division-code prefix inside your region"),
]
UpdatedSince = Annotated[
    datetime | None,
    Query(description="Only rows changed at or after this instant (ISO 8601, with offset)"),
]

# Both formats, for the route's OpenAPI answer.
EXPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": 'One page; the next in X-Next-Cursor and Link rel="next"',
        "content": {"application/x-ndjson": {}, "text/csv": {}},
    }
}


@dataclass(frozen=True)
class ExportColumn:
    """One column of an export: its stable name and what it holds (masking included)."""

    name: str
    description: str


Columns = tuple[ExportColumn, ...]


@dataclass(frozen=True)
class Export:
    """One export, for the catalogue (docs/exports.md): its route, what a row is, how its
    values are masked, and its columns. Roles come from the service's access policy."""

    route: str  # "/api/v1/exports/persons"
    rows: str  # what one row is, and the page order
    masking: str
    columns: Columns
    updated_since: bool = False


def export_region(principal: Principal, region: str | None) -> str:
    """The division-code prefix to export: the caller's region, or ``region`` inside it."""
    scope = principal.region_scope()
    if region is None:
        return scope
    if not region.startswith(scope):
        raise Problem(
            403,
            "out_of_region",
            "所请求的区域不在您负责的辖区内",
            "The region asked for is outside your region",
        )
    return region


def keyset_page(
    rows: Sequence[Any], limit: int, key: Callable[[Any], Iterable[Any]]
) -> tuple[list[Any], str | None]:
    """A page from ``limit + 1`` fetched rows: the first ``limit``, and the cursor of the last
    one's key when there was one more (None on the last page)."""
    page = list(rows[:limit])
    if len(rows) <= limit:
        return page, None
    return page, encode_cursor(*key(page[-1]))


def cursor_int(value: str) -> int:
    """An integer key taken from a decoded cursor (a malformed one is refused 422)."""
    if not value.isdigit() or len(value) > 18:
        raise Problem(
            422,
            "validation_failed",
            "分页游标无效",
            "Invalid cursor",
            errors=[{"field": "cursor", "message": "分页游标无效"}],
        )
    return int(value)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


# A CSV cell starting with one of these is a formula to a spreadsheet (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    value = _plain(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    text = str(value)
    if isinstance(value, str) and text.startswith(_FORMULA_START):
        return "'" + text
    return text


def export_response(
    rows: Iterable[Mapping[str, Any]],
    columns: Columns,
    format: ExportFormat,
    next_cursor: str | None,
    *,
    request: Request,
) -> Response:
    """One page of an export: exactly ``columns``, in their order, in ``format``; the next
    page's cursor in ``X-Next-Cursor`` and ``Link`` (the request's URL with that cursor)."""
    names = [c.name for c in columns]
    if format == "jsonl":
        body = "".join(
            json.dumps({n: _plain(row.get(n)) for n in names}, ensure_ascii=False) + "\n"
            for row in rows
        )
    else:
        out = io.StringIO()
        out.write("\ufeff")
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(names)
        writer.writerows([_cell(row.get(n)) for n in names] for row in rows)
        body = out.getvalue()
    headers: dict[str, str] = {}
    if next_cursor is not None:
        url = request.url.include_query_params(cursor=next_cursor)
        headers["X-Next-Cursor"] = next_cursor
        headers["Link"] = f'<{url}>; rel="next"'
    return Response(body.encode("utf-8"), media_type=MEDIA_TYPES[format], headers=headers)


# -- the catalogue (docs/exports.md, ``lingju exports``) ------------------------------------------

CATALOGUE_HEAD = """\
# Exports (数据导出)

Generated by `lingju exports` from each service's `api/exports.py` and access policy; do not
edit by hand (tests/kernel/test_export_catalogue.py holds it current).

Every export is `GET` with these query parameters:

- `format`: `jsonl` (JSON lines, `application/x-ndjson`, one object per row holding exactly the
  columns below) or `csv` (`text/csv; charset=utf-8` with a UTF-8 BOM, a header row of the
  column names; a text cell starting with `= + - @` is prefixed with `'`);
- `limit`: rows per page, default {default}, at most {max};
- `cursor`: the previous page's `X-Next-Cursor` (also sent as `Link: <...>; rel="next"`); both
  headers are absent on the last page. A malformed cursor is refused 422;
- `region`: a division-code prefix inside the caller's region (default: the caller's whole
  region; outside it: 403 `out_of_region`);
- `updated_since` (where listed): rows changed at or after this instant. To pull increments,
  pass the time you started your previous pull.

Rows are confined to the caller's region; every call is written to the service's audit trail.
A column set only ever grows at its end: names and order never change.

Masking is in the values: ID numbers keep their first six and last four digits
(`330102********1234`) for every role but `admin`; phones keep their first three and last four
(`138****8000`) for everyone; bank accounts show only their last four digits.
"""


def catalogue_markdown(services: Iterable[str]) -> str:
    """docs/exports.md: every service's exports, with the roles its policy gives them."""
    import importlib

    parts = [CATALOGUE_HEAD.format(default=DEFAULT_LIMIT, max=MAX_LIMIT)]
    for service in services:
        try:
            exports: tuple[Export, ...] = importlib.import_module(
                f"services.{service}.api.exports"
            ).EXPORTS
        except ModuleNotFoundError:
            continue
        policy = importlib.import_module(f"services.{service}.api.access").POLICY
        for export in exports:
            found = policy.rule_for("GET", export.route)
            roles = ", ".join(f"`{r.value}`" for r in sorted(found.roles)) if found else "none"
            parts.append(f"\n## {service}: `GET {export.route}`\n\n")
            parts.append(f"- Rows: {export.rows}\n- Roles: {roles}\n")
            parts.append(f"- Masking: {export.masking}\n")
            parts.append(f"- `updated_since`: {'yes' if export.updated_since else 'no'}\n\n")
            parts.append(columns_markdown(export.columns))
    return "".join(parts)


def columns_markdown(columns: Columns) -> str:
    """A column set as a markdown table, in its order."""
    lines = ["| # | column | description |\n", "|---|---|---|\n"]
    for i, c in enumerate(columns, 1):
        text = c.description.replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {i} | `{c.name}` | {text} |\n")
    return "".join(lines)
