"""Offline sync for workers' phones (离线同步).

Pull (``GET /sync?cursor=``). A phone asks for what changed since its cursor: its tasks (those
assigned to its user, each with the visits recorded on it, and a ``remove`` for each task that
stopped being theirs) and the facts of the persons of its region (a ``remove`` for a person who
moved out). Visit records are stored encrypted (``records.py``); a page's are read in one query
and decrypted. Changes come from
``sync_log``, which database triggers write in the same transaction as the change itself
(migration 0006), one row per (entity, id, scope) so a phone reads each change once.

Why no change is skipped while others write. Rows are read in (``txn``, ``seq``) order, and a
page only reaches rows that no transaction still running can precede:
- on PostgreSQL ``txn`` is the writing transaction's id, and a page takes only rows with
  ``txn`` below its snapshot's xmin (the oldest transaction still running). A transaction
  with a smaller id that commits later would otherwise land behind a cursor already past it;
  below xmin every transaction has finished, so the rows there are complete and final;
- on SQLite one transaction writes at a time and ``seq`` is AUTOINCREMENT (never reused), so
  commit order is ``seq`` order and ``txn`` stays 0.
The page's rows and the entities' current state are read in ONE statement (one snapshot): an
entity is delivered in the state its newest log row describes, never in a newer state that a
later page would deliver again.

Push (``POST /sync``). A batch of visit records made offline, each with the id the phone made
and the version of the task it was made on. Each item is its own transaction through
``records.record_visit`` (the same rules as the online route), so one conflict never loses the
others: ``accepted`` (recorded now), ``duplicate`` (this id was recorded before: re-sending a
batch is harmless), ``conflict`` (the task changed meanwhile — closed, cancelled, reassigned —
nothing written, the task's current state returned) or ``rejected`` (the item itself is wrong).
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import and_, literal_column, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from services.visits import records
from services.visits.domain.plans import Window, state_on
from services.visits.models import PersonFacts, SyncLog, Task
from services.visits.records import VisitIn, VisitOut
from services.visits.tasks import TaskOut, _task_out
from shared.auth import Principal
from shared.crypto import FieldCipher
from shared.errors import Problem, field_errors
from shared.pagination import decode_cursor, encode_cursor

if TYPE_CHECKING:
    from shared.service import Runtime

MAX_BATCH = 200  # records per push: a day's work of one worker fits many times over
MAX_PAGE = 500

# The watermark on PostgreSQL: every transaction below it has finished (see the module doc).
_PG_WATERMARK = literal_column("pg_snapshot_xmin(pg_current_snapshot())::text::bigint")


# -- shapes -------------------------------------------------------------------------------------


class PersonOut(BaseModel):
    """The facts of a person a worker needs on a visit (no ID number: visits does not keep it)."""

    person_id: str
    name: str
    sex: str
    birth_date: date
    region_code: str
    died_on: date | None
    version: int = Field(description="The registry version these facts reflect")


class SyncItem(BaseModel):
    kind: Literal["task", "person"]
    id: str
    op: Literal["upsert", "remove"] = Field(
        description="upsert: store this state; remove: the entity left your phone's scope "
        "(reassigned, moved away): drop it"
    )
    task: TaskOut | None = None
    visits: list[VisitOut] | None = Field(
        default=None,
        description="A task upsert: the visits recorded on the task, oldest first (a closed "
        "task's record, e.g. made on another device); empty while the task is open",
    )
    person: PersonOut | None = None


class SyncPage(BaseModel):
    items: list[SyncItem]
    cursor: str = Field(description="Keep it and send it on the next pull (also when no items)")
    has_more: bool = Field(description="true: pull again now with the new cursor")


class SyncRecordIn(VisitIn):
    """One record made offline: a visit record plus the task it was made on."""

    task_id: str = Field(min_length=1, max_length=36)


class SyncPushIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    records: list[Any] = Field(
        min_length=1,
        max_length=MAX_BATCH,
        description="Each item a SyncRecordIn (a visit record plus task_id); items are checked "
        "one by one, so a malformed item is rejected alone",
    )


class SyncResult(BaseModel):
    id: str | None = Field(description="The record's id as sent (null if it had none)")
    task_id: str | None
    status: Literal["accepted", "duplicate", "conflict", "rejected"]
    code: str | None = Field(
        default=None, description="Why not accepted: task_changed, forbidden, validation_failed..."
    )
    detail: str | None = None
    errors: list[dict[str, str]] | None = None
    visit: VisitOut | None = Field(default=None, description="The stored record")
    task: TaskOut | None = Field(default=None, description="A conflict: the task as it is now")


class SyncPushOut(BaseModel):
    results: list[SyncResult] = Field(description="One per item, in the order sent")
    accepted: int
    duplicate: int
    conflict: int
    rejected: int


# -- pull ---------------------------------------------------------------------------------------


def _start_after(cursor: str | None) -> tuple[int, int]:
    after = decode_cursor(cursor, 2)
    if not after:
        return 0, 0
    try:
        return int(after[0]), int(after[1])
    except ValueError:
        raise Problem(
            422,
            "validation_failed",
            "同步游标无效",
            "Invalid sync cursor",
            errors=[{"field": "cursor", "message": "格式不正确"}],
        ) from None


def _task_state(t: Task, today: date) -> str:
    window = Window(t.due_on, t.overdue_on, t.expires_on)
    return state_on(window, today, done=t.closed == "done", cancelled=t.closed is not None).value


async def pull(
    session: AsyncSession,
    cipher: FieldCipher,
    principal: Principal,
    today: date,
    cursor: str | None,
    limit: int,
) -> SyncPage:
    """The changes in the caller's scope after ``cursor``, oldest first (see the module doc)."""
    region = principal.region_scope()
    if not region:
        raise Problem(
            403,
            "forbidden",
            "同步需要有辖区的工作人员账号",
            "Sync needs a staff account with a region",
        )
    mine = f"a:{principal.sub}"
    txn, seq = _start_after(cursor)
    log = SyncLog
    task_person = aliased(PersonFacts)
    person = aliased(PersonFacts)
    q = (
        select(log, Task, task_person.name, person)
        .select_from(log)
        .outerjoin(Task, and_(log.entity == "task", Task.id == log.entity_id))  # type: ignore[arg-type]
        .outerjoin(task_person, task_person.person_id == Task.person_id)  # type: ignore[arg-type]
        .outerjoin(person, and_(log.entity == "person", person.person_id == log.entity_id))  # type: ignore[arg-type]
        .where(
            or_(log.scope == mine, log.scope.startswith(f"r:{region}", autoescape=True)),  # type: ignore[attr-defined]
            or_(log.txn > txn, and_(log.txn == txn, log.seq > seq)),  # type: ignore[arg-type,operator]
        )
        .order_by(log.txn, log.seq)  # type: ignore[arg-type]
        .limit(limit + 1)
    )
    bind = session.bind
    if bind is not None and bind.dialect.name == "postgresql":
        q = q.where(log.txn < _PG_WATERMARK)  # type: ignore[arg-type]
    rows = list((await session.execute(q)).all())
    page = rows[:limit]
    # A visit closes its task, so only the page's closed tasks can have records: one query for
    # them, decrypted here (the page is bounded by ``limit``).
    recorded = await records.visits_of_tasks(
        session,
        cipher,
        [
            task.id
            for entry, task, _, _ in page
            if task is not None
            and task.closed is not None
            and task.assignee == principal.sub
            and entry.scope == f"a:{task.assignee}"
        ],
    )
    items: list[SyncItem] = []
    for entry, task, person_name, facts in page:
        if entry.entity == "task":
            if task is None or task.assignee != principal.sub:
                items.append(SyncItem(kind="task", id=entry.entity_id, op="remove"))
            elif entry.scope == f"a:{task.assignee}":
                out = _task_out(task, _task_state(task, today), person_name)
                visits = recorded.get(task.id, [])
                items.append(
                    SyncItem(kind="task", id=task.id, op="upsert", task=out, visits=visits)
                )
        else:
            if facts is None or not facts.region_code.startswith(region):
                items.append(SyncItem(kind="person", id=entry.entity_id, op="remove"))
            elif entry.scope == f"r:{facts.region_code}":
                items.append(
                    SyncItem(
                        kind="person",
                        id=facts.person_id,
                        op="upsert",
                        person=PersonOut(
                            person_id=facts.person_id,
                            name=facts.name,
                            sex=facts.sex,
                            birth_date=facts.birth_date,
                            region_code=facts.region_code,
                            died_on=facts.died_on,
                            version=facts.source_version,
                        ),
                    )
                )
        # Otherwise the row is an older scope of an entity still in view: the row of its
        # current scope delivers it (once), so this one is passed over.
    if page:
        last = page[-1][0]
        txn, seq = last.txn, int(last.seq)
    return SyncPage(
        items=items, cursor=encode_cursor(str(txn), str(seq)), has_more=len(rows) > limit
    )


# -- push ---------------------------------------------------------------------------------------


def _rejected(raw_id: Any, task_id: Any, problem: Problem, english: bool) -> SyncResult:
    body = problem.body(english)
    return SyncResult(
        id=str(raw_id) if raw_id is not None else None,
        task_id=str(task_id) if task_id is not None else None,
        status="rejected",
        code=problem.code,
        detail=body["detail"],
        errors=problem.errors,
    )


async def _current_task(rt: Runtime, task_id: str) -> Task | None:
    async with rt.db.session() as s:
        return await s.get(Task, task_id)


async def _conflict(
    rt: Runtime, item: SyncRecordIn, principal: Principal, english: bool
) -> SyncResult:
    """A conflict answer: the task as it is now, so the phone shows what happened to it."""
    task = await _current_task(rt, item.task_id)
    out = None
    if task is not None:
        async with rt.db.session() as s:
            facts = await s.get(PersonFacts, task.person_id)
        state = _task_state(task, rt.clock.today())
        out = _task_out(task, state, facts.name if facts else None)
    problem = records.task_changed()
    return SyncResult(
        id=str(item.id),
        task_id=item.task_id,
        status="conflict",
        code=problem.code,
        detail=problem.body(english)["detail"],
        task=out,
    )


async def _one(rt: Runtime, raw: Any, principal: Principal, english: bool) -> SyncResult:
    try:
        item = SyncRecordIn.model_validate(raw)
    except ValidationError as e:
        code, errors = field_errors(e, english)
        zh, en = "该条记录格式不正确", "The record is malformed"
        known = raw if isinstance(raw, dict) else {}
        return _rejected(
            known.get("id"),
            known.get("task_id"),
            Problem(422, code, zh, en, errors=errors),
            english,
        )
    try:
        async with rt.uow() as uow:
            status, out = await records.record_visit(uow, rt.cipher, item.task_id, item, principal)
            await uow.commit()
    except records.TaskChanged:
        # The same id may have raced in from another push and closed the task: a duplicate.
        async with rt.db.session() as s:
            first = await records.existing_visit(
                s, rt.cipher, item.task_id, str(item.id), principal
            )
        if first is not None:
            return SyncResult(id=first.id, task_id=item.task_id, status="duplicate", visit=first)
        return await _conflict(rt, item, principal, english)
    except IntegrityError:
        async with rt.db.session() as s:
            first = await records.existing_visit(
                s, rt.cipher, item.task_id, str(item.id), principal
            )
        if first is None:
            raise
        return SyncResult(id=first.id, task_id=item.task_id, status="duplicate", visit=first)
    except Problem as p:
        if p.status == 403:
            # Not (or no longer) the caller's task. If it changed since the phone saw it, it was
            # reassigned under the worker's feet: a conflict, not a fault of the phone. The
            # conflict shows the task, so only to a caller whose region holds it.
            task = await _current_task(rt, item.task_id)
            if (
                task is not None
                and task.version != item.task_version
                and principal.covers(task.region_code)
            ):
                return await _conflict(rt, item, principal, english)
        return _rejected(item.id, item.task_id, p, english)
    kind: Literal["accepted", "duplicate"] = "accepted" if status == 201 else "duplicate"
    return SyncResult(id=out.id, task_id=item.task_id, status=kind, visit=out)


async def push(rt: Runtime, batch: SyncPushIn, principal: Principal, english: bool) -> SyncPushOut:
    """Apply a phone's batch item by item, in the order sent."""
    results = [await _one(rt, raw, principal, english) for raw in batch.records]
    statuses = [r.status for r in results]
    return SyncPushOut(
        results=results,
        accepted=statuses.count("accepted"),
        duplicate=statuses.count("duplicate"),
        conflict=statuses.count("conflict"),
        rejected=statuses.count("rejected"),
    )
