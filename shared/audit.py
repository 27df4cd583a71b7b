"""The audit trail (审计日志): who read or changed a person's record, tamper-evident.

Every call of a route whose access rule says ``person_record`` (shared/access.py), made by
anyone but a resident about themself, is appended to the service's ``audit_log``: who (subject,
role, region), what (the route, the record's ids from the path, the names of the query's
parameters: never their values, which may be an ID number; and the persons a JSON answer was
about), the answer's status, when, and the request id (``X-Correlation-Id``). A refused
attempt is recorded like a granted one.

Each entry carries the SHA-256 of its content and of the entry before it (a hash chain), so
changing, removing or inserting an entry breaks every hash after it; ``audit_head`` keeps the
last sequence number and hash, so cutting the tail off is seen too. Appends are serialised by
updating that one row first (a row lock on PostgreSQL, the write lock on SQLite).

The entry is written before any of the answer is sent: a read whose entry cannot be written
answers 503 instead (nothing is disclosed without a trace); a change has already committed by
then, so its answer goes out and the failure is logged at ERROR.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, field_validator
from sqlalchemy import Table, select, update
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import context
from shared.auth import Principal, Role
from shared.db import Database, dialect_insert, utcnow
from shared.errors import Problem, problem_response
from shared.pagination import MAX_LIMIT, Page, decode_cursor, encode_cursor

log = logging.getLogger("lingju.audit")

GENESIS = "0" * 64
# The fields an entry's hash covers, in this order (with the previous entry's hash).
HASHED = (
    "seq",
    "at",
    "actor",
    "role",
    "region",
    "route",
    "record",
    "persons",
    "status",
    "request_id",
)


@dataclass(frozen=True)
class AuditTables:
    log: Table
    head: Table


def entry_hash(prev_hash: str, entry: dict[str, Any]) -> str:
    content = {k: entry[k] for k in HASHED}
    content["at"] = _iso(content["at"])
    canonical = json.dumps([prev_hash, content], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _iso(at: datetime | str) -> str:
    return at if isinstance(at, str) else at.isoformat(timespec="microseconds")


async def append(db: Database, tables: AuditTables, entry: dict[str, Any]) -> int:
    """Append one entry (every field of ``HASHED`` but ``seq``); returns its sequence number."""
    head = tables.head
    bump = (
        update(head)
        .where(head.c.id == 1)
        .values(seq=head.c.seq + 1)
        .returning(head.c.seq, head.c.hash)
    )
    async with db.session() as s, s.begin():
        row = (await s.execute(bump)).first()
        if row is None:  # a new (or emptied) database: start the chain
            first = dialect_insert(s, head).values(id=1, seq=0, hash=GENESIS)
            await s.execute(first.on_conflict_do_nothing())
            row = (await s.execute(bump)).first()
        assert row is not None
        seq, prev = int(row.seq), str(row.hash)
        full = {**entry, "seq": seq}
        digest = entry_hash(prev, full)
        await s.execute(tables.log.insert().values(**full, prev_hash=prev, hash=digest))
        await s.execute(update(head).where(head.c.id == 1).values(hash=digest))
    return seq


class Verification(BaseModel):
    valid: bool
    entries: int
    head_seq: int
    head_hash: str
    first_broken_seq: int | None = None
    reason: str | None = None


async def verify(db: Database, tables: AuditTables, *, batch: int = 1000) -> Verification:
    """Walk the whole chain, recomputing every hash; the first break is reported."""
    log_t = tables.log
    prev, expected_seq, count = GENESIS, 1, 0

    def broken(seq: int, reason: str) -> Verification:
        return Verification(
            valid=False,
            entries=count,
            head_seq=expected_seq - 1,
            head_hash=prev,
            first_broken_seq=seq,
            reason=reason,
        )

    while True:
        async with db.session() as s:
            rows = (
                (
                    await s.execute(
                        select(log_t)
                        .where(log_t.c.seq >= expected_seq)
                        .order_by(log_t.c.seq)
                        .limit(batch)
                    )
                )
                .mappings()
                .all()
            )
        for r in rows:
            if r["seq"] != expected_seq:
                return broken(expected_seq, f"entry {expected_seq} is missing")
            if r["prev_hash"] != prev:
                return broken(r["seq"], "does not follow the entry before it")
            if entry_hash(prev, dict(r)) != r["hash"]:
                return broken(r["seq"], "its content does not match its hash")
            prev, expected_seq, count = r["hash"], expected_seq + 1, count + 1
        if len(rows) < batch:
            break
    async with db.session() as s:
        head = (await s.execute(select(tables.head).where(tables.head.c.id == 1))).first()
    head_seq, head_hash = (int(head.seq), str(head.hash)) if head else (0, GENESIS)
    if (head_seq, head_hash) != (count, prev):
        return Verification(
            valid=False,
            entries=count,
            head_seq=head_seq,
            head_hash=head_hash,
            first_broken_seq=count + 1,
            reason=f"the head says {head_seq} entries, the log holds {count}: entries were cut",
        )
    return Verification(valid=True, entries=count, head_seq=head_seq, head_hash=head_hash)


# -- recording ------------------------------------------------------------------------------


def audited(state: dict[str, Any]) -> dict[str, Any] | None:
    """The entry a request's state asks for (set by ``AccessPolicy.caller``), or None."""
    access = state.get("access")
    principal: Principal | None = state.get("principal")
    if access is None or principal is None:
        return None
    key, rule, record = access
    if not rule.person_record:
        return None
    if principal.role is Role.resident:
        return None  # a resident about themself: their own business, not an access to audit
    return {
        "actor": principal.sub[:200],
        "role": principal.role.value,
        "region": principal.region[:12],
        "route": key[:200],
        "record": record[:1000],
    }


# Keys whose values name persons in the services' answers; and an object with a name and a birth
# date is a person, so its "id" is one (registry's persons, a family's members).
PERSON_KEYS = frozenset(
    {
        "person_id",
        "applicant_id",
        "holder_ids",
        "wife_id",
        "husband_id",
        "child_id",
        "mother_id",
        "father_id",
        "spouse_id",
        "payee_id",
    }
)
MAX_PERSONS = 200  # a page holds at most this many (shared.pagination.MAX_LIMIT)


def persons_in(document: Any) -> list[str]:
    """The person ids a JSON answer is about, sorted, at most ``MAX_PERSONS``."""
    found: set[str] = set()
    stack = [document]
    while stack and len(found) < MAX_PERSONS:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            if {"name", "birth_date"} <= node.keys() and isinstance(node.get("id"), str):
                found.add(node["id"])
            for key, value in node.items():
                if key in PERSON_KEYS:
                    found.update(v for v in (value if isinstance(value, list) else [value]) if v)
                elif isinstance(value, dict | list):
                    stack.append(value)
    return sorted(str(v) for v in found)[:MAX_PERSONS]


class AuditTrail:
    """Pure ASGI middleware (see the module doc). A JSON answer is held until complete (the
    services' JSON answers are pages of bounded size) to name the persons it is about; any
    other answer (a bank file) is recorded when it starts, by its path alone."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # One dict shared with every copy of the scope below, where request.state writes.
        state: dict[str, Any] = scope.setdefault("state", {})
        entry: dict[str, Any] | None = None
        held: list[Message] = []
        swallowing = False

        async def record(body: bytes | None) -> bool:
            """Append the entry; False when it could not be written and the answer is a read."""
            assert entry is not None
            persons: list[str] = []
            if body:
                with contextlib.suppress(ValueError):
                    persons = persons_in(_documents(body))
            entry["persons"] = json.dumps(persons, separators=(",", ":"))
            rt = scope["app"].state.runtime
            try:
                await append(rt.db, rt.tables.audit, entry)
            except Exception:
                log.exception("audit entry not written: %s %s", entry["route"], entry)
                return scope["method"] not in ("GET", "HEAD")
            return True

        async def send_audited(message: Message) -> None:
            nonlocal entry, swallowing
            if swallowing:
                return
            if message["type"] == "http.response.start":
                entry = audited(state)
                if entry is not None:
                    entry |= {
                        "status": int(message["status"]),
                        "at": utcnow(),
                        "request_id": (context.correlation_id.get() or "")[:64],
                    }
                    if _is_json(message):
                        held.append(message)
                        return
                    if not await record(None):
                        swallowing = True
                        await _unavailable(scope, receive, send)
                        return
            elif held:
                held.append(message)
                if message.get("more_body"):
                    return
                body = b"".join(m.get("body", b"") for m in held[1:])
                if not await record(body):
                    swallowing = True
                    await _unavailable(scope, receive, send)
                    return
                for m in held:
                    await send(m)
                held.clear()
                return
            await send(message)

        await self.app(scope, receive, send_audited)


def _documents(body: bytes) -> Any:
    """A JSON answer, or the list of the documents of a JSON-lines one (an export page)."""
    try:
        return json.loads(body)
    except ValueError:
        return [json.loads(line) for line in body.splitlines() if line.strip()]


def _is_json(start: Message) -> bool:
    for name, value in start.get("headers", []):
        if name.lower() == b"content-type":
            return value.split(b";")[0].strip().endswith(b"json")
    return False


async def _unavailable(scope: Scope, receive: Receive, send: Send) -> None:
    from starlette.requests import Request

    problem = Problem(
        503,
        "audit_unavailable",
        "审计日志暂不可写，未返回个人信息，请稍后重试",
        "The audit trail cannot be written; no personal data was returned. Retry later",
        headers={"Retry-After": "5"},
    )
    await problem_response(Request(scope, receive), problem)(scope, receive, send)


def record_of(path_params: dict[str, Any], query_keys: list[str]) -> str:
    """What an entry names: the record's ids from the path, and the query's parameter names."""
    content: dict[str, Any] = dict(sorted(path_params.items()))
    if query_keys:
        content["query"] = sorted(set(query_keys))
    return json.dumps(content, ensure_ascii=False, separators=(",", ":"))


# -- the auditor's routes -------------------------------------------------------------------


class AuditEntryOut(BaseModel):
    seq: int
    at: datetime
    actor: str
    role: str
    region: str
    route: str
    record: str
    persons: list[str]
    status: int
    request_id: str
    prev_hash: str
    hash: str

    @field_validator("persons", mode="before")
    @classmethod
    def _stored_as_json(cls, v: Any) -> Any:
        return json.loads(v) if isinstance(v, str) else v


def _filtered(
    tables: AuditTables,
    principal: Principal,
    actor: str | None,
    record: str | None,
    since: datetime | None,
    until: datetime | None,
) -> Any:
    t = tables.log
    q = select(t).order_by(t.c.seq)
    scope = principal.region_scope()
    if scope:
        # An auditor sees what the staff of their region did, and what region-less staff (the
        # system admin) did, which may concern anyone.
        q = q.where(t.c.region.startswith(scope, autoescape=True) | (t.c.region == ""))
    if actor:
        q = q.where(t.c.actor == actor)
    if record:
        # Named in the path, or among the persons the answer was about.
        q = q.where(
            t.c.record.contains(record, autoescape=True)
            | t.c.persons.contains(f'"{record}"', autoescape=True)
        )
    if since:
        q = q.where(t.c.at >= since)
    if until:
        q = q.where(t.c.at < until)
    return q


Actor = Annotated[str | None, Query(max_length=200, description="A subject (sub)")]
Record = Annotated[
    str | None,
    Query(
        max_length=100,
        description="An id the entry names: in the path, or a person the answer was about",
    ),
]


def audit_router(caller: Any, runtime: Any) -> APIRouter:
    """``caller``: the service policy's dependency; ``runtime``: the Runtime dependency.
    (Defaults, not Annotated aliases: annotations are strings, resolved in the module.)"""
    router = APIRouter(prefix="/audit", tags=["audit"])
    auditor = Depends(caller)
    rt_dep = Depends(runtime)

    @router.get("", response_model=Page[AuditEntryOut], summary="The audit trail, oldest first")
    async def list_entries(
        actor: Actor = None,
        record: Record = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
        cursor: str | None = None,
        rt: Any = rt_dep,
        principal: Principal = auditor,
    ) -> Page[AuditEntryOut]:
        tables: AuditTables = rt.tables.audit
        q = _filtered(tables, principal, actor, record, since, until).limit(limit + 1)
        after = decode_cursor(cursor, 1)
        if after:
            q = q.where(tables.log.c.seq > int(after[0]))
        async with rt.db.session() as s:
            rows = (await s.execute(q)).mappings().all()
        items = [AuditEntryOut(**dict(r)) for r in rows[:limit]]
        nxt = encode_cursor(items[-1].seq) if len(rows) > limit else None
        return Page[AuditEntryOut](items=items, next_cursor=nxt)

    @router.get(
        "/export",
        summary="The audit trail as a file (JSON lines or CSV), every matching entry",
        response_class=StreamingResponse,
        responses={200: {"content": {"application/x-ndjson": {}, "text/csv": {}}}},
    )
    async def export(
        format: Literal["jsonl", "csv"] = "jsonl",
        actor: Actor = None,
        record: Record = None,
        since: datetime | None = None,
        until: datetime | None = None,
        rt: Any = rt_dep,
        principal: Principal = auditor,
    ) -> StreamingResponse:
        tables: AuditTables = rt.tables.audit
        q = _filtered(tables, principal, actor, record, since, until)
        media = "application/x-ndjson" if format == "jsonl" else "text/csv; charset=utf-8"
        name = f"audit-{rt.name}.{format}"
        return StreamingResponse(
            _lines(rt.db, q, format),
            media_type=media,
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    @router.get("/verify", response_model=Verification, summary="Check the whole hash chain")
    async def verify_chain(rt: Any = rt_dep, _: Principal = auditor) -> Verification:
        return await verify(rt.db, rt.tables.audit)

    return router


async def _lines(db: Database, q: Any, format: str, batch: int = 1000) -> AsyncIterator[str]:
    fields = list(AuditEntryOut.model_fields)
    if format == "csv":
        yield "\ufeff" + ",".join(fields) + "\r\n"  # the BOM: Excel then reads it as UTF-8
    last = 0
    while True:
        page = q.where(q.selected_columns.seq > last).limit(batch)
        async with db.session() as s:
            rows = (await s.execute(page)).mappings().all()
        for r in rows:
            entry = AuditEntryOut(**dict(r)).model_dump(mode="json")
            if format == "jsonl":
                yield json.dumps(entry, ensure_ascii=False) + "\n"
            else:
                out = io.StringIO()
                cells = [json.dumps(entry[f]) if f == "persons" else entry[f] for f in fields]
                csv.writer(out).writerow(cells)
                yield out.getvalue()
        if len(rows) < batch:
            return
        last = rows[-1]["seq"]
