"""Visit records and procedures (随访记录 / 手术记录).

Visit records. A worker's phone makes the record's id, so a record sent again (a lost answer,
an offline batch pushed twice) is the same visit: the second send answers with the first
record. A record is made against the version of the task the phone had; a task that changed
meanwhile (closed, reassigned, moved) is a conflict (409 ``task_changed``) and nothing is
written, never a silent overwrite. Closing the task is a guarded UPDATE on (id, version, still
open), so two phones recording at once close it once.

Consent (知情选择, DESIGN §1.3). Every record carries the person's consent or refusal. A
refusal closes the task as ``declined`` with the refusal written down; it is never escalated
(a declined task is closed, so no overdue announcement follows) and no next step is scheduled
against the person's choice.

Procedures. Recorded by station staff only with consent (a refusal means no procedure, hence no
row); the ``procedure.recorded`` event goes through the outbox and the follow-up plan whose
trigger names the procedure starts in the same transaction.

Health data at rest (PIPL). A record's place, findings and notes, and a procedure's code and
performer, are written only as ``FieldCipher`` ciphertext (contexts in ``models.py``) and
decrypted here when read. A refusal's note stays in the record: the task's ``closed_reason``
(clear, shown in working lists) says only that the person declined. Events carry neither.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.visits import plan_runs
from services.visits.domain.plans import PROCEDURE_EVENT, Plan
from services.visits.events import ProcedureRecorded, VisitRecorded, plans
from services.visits.forms import findings_errors
from services.visits.models import (
    PROCEDURE_CODE,
    PROCEDURE_PERFORMER,
    VISIT_CONSENT_NOTE,
    VISIT_FINDINGS,
    VISIT_NEXT_STEP_NOTE,
    VISIT_PLACE,
    PersonFacts,
    Procedure,
    Station,
    Task,
    VisitRecord,
)
from services.visits.tasks import _assignees, start_plan, task_names
from shared import clock
from shared.auth import Principal, Role
from shared.crypto import FieldCipher
from shared.db import dialect_insert, utcnow
from shared.errors import Problem, not_found
from shared.events.outbox import UnitOfWork

_TASKS = Task.__table__
# Findings are a phone's form, not a document store: a bound keeps a row reasonable.
MAX_FINDINGS_CHARS = 8000
# A referral to the township station becomes a township task: due the day of the visit, overdue
# after two weeks, missed after thirty days. This team's reading; the specification names no
# figure for a referral.
REFERRAL_OVERDUE_DAYS = 14
REFERRAL_EXPIRY_DAYS = 30
# An extra visit may be set at most this far ahead (a phone's date picker typo is refused).
EXTRA_VISIT_MAX_DAYS = 366
# A declined task's closed_reason: the person's own words stay in the (encrypted) record.
DECLINED_REASON = "本人知情选择：拒绝"


# -- shapes -------------------------------------------------------------------------------------


class ConsentIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    given: bool = Field(description="true: the person agreed to the visit; false: refused")
    note: str | None = Field(default=None, max_length=500, description="e.g. why refused")


class ExtraVisitIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    kind: Literal["extra_visit"]
    on: date = Field(description="The day the extra visit is due")
    note: str | None = Field(default=None, max_length=500)


class ReferralIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    kind: Literal["referral"] = Field(description="Referral to the township station")
    note: str | None = Field(default=None, max_length=500)


NextStepIn = Annotated[ExtraVisitIn | ReferralIn, Field(discriminator="kind")]


class VisitIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: uuid.UUID = Field(description="Made by the phone; sending it again is harmless")
    performed_at: AwareDatetime
    place: str = Field(min_length=1, max_length=100, examples=["家中"])
    consent: ConsentIn
    findings: dict[str, Any] = Field(
        default_factory=dict,
        description="Keyed by the step's service; free text under any key (e.g. notes)",
        examples=[{"blood_pressure": "118/76", "lochia": "normal", "notes": "恢复良好"}],
    )
    next_step: NextStepIn | None = None
    task_version: int = Field(ge=1, description="The version of the task the visit was made on")

    @field_validator("findings")
    @classmethod
    def _bounded(cls, v: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(v, ensure_ascii=False)) > MAX_FINDINGS_CHARS:
            raise ValueError(f"findings longer than {MAX_FINDINGS_CHARS} characters")
        return v


class VisitOut(BaseModel):
    id: str
    task_id: str
    person_id: str
    performer_sub: str
    performer_role: str
    performed_at: datetime
    place: str
    consent: Literal["given", "refused"]
    consent_note: str | None
    findings: dict[str, Any]
    next_step: str | None
    next_step_on: date | None
    next_step_note: str | None
    next_task_id: str | None = Field(description="The task the next step created, if any")
    task_version: int
    created_at: datetime


def _decrypt(cipher: FieldCipher, token: str | None, context: str) -> str | None:
    return None if token is None else cipher.decrypt(token, context=context)


def _encrypt(cipher: FieldCipher, value: str | None, context: str) -> str | None:
    return None if value is None else cipher.encrypt(value, context=context)


def _visit_out(r: VisitRecord, cipher: FieldCipher) -> VisitOut:
    return VisitOut(
        id=r.id,
        task_id=r.task_id,
        person_id=r.person_id,
        performer_sub=r.performer_sub,
        performer_role=r.performer_role,
        performed_at=r.performed_at,
        place=cipher.decrypt(r.place_enc, context=VISIT_PLACE),
        consent=r.consent,  # type: ignore[arg-type]
        consent_note=_decrypt(cipher, r.consent_note_enc, VISIT_CONSENT_NOTE),
        findings=json.loads(cipher.decrypt(r.findings_enc, context=VISIT_FINDINGS)),
        next_step=r.next_step,
        next_step_on=r.next_step_on,
        next_step_note=_decrypt(cipher, r.next_step_note_enc, VISIT_NEXT_STEP_NOTE),
        next_task_id=r.next_task_id,
        task_version=r.task_version,
        created_at=r.created_at,
    )


class ProcedureIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: uuid.UUID | None = Field(
        default=None, description="Optional client id: sending it again is harmless"
    )
    person_id: str = Field(min_length=1, max_length=36)
    procedure: str = Field(min_length=1, max_length=64, examples=["iud_insertion"])
    performed_on: date
    station_id: str = Field(min_length=1, max_length=36)
    consent_given: bool | None = Field(
        default=None, description="Must be true: without consent there is no procedure"
    )


class ProcedureOut(BaseModel):
    id: str
    person_id: str
    region_code: str
    procedure: str
    performed_on: date
    station_id: str
    performer_sub: str
    performer_role: str
    consent_given: bool
    followup_plan: str | None = Field(description="The plan the procedure started, if any")
    created_at: datetime


def _procedure_out(p: Procedure, cipher: FieldCipher) -> ProcedureOut:
    procedure = cipher.decrypt(p.procedure_enc, context=PROCEDURE_CODE)
    plan = plan_for_procedure(procedure)
    return ProcedureOut(
        id=p.id,
        person_id=p.person_id,
        region_code=p.region_code,
        procedure=procedure,
        performed_on=p.performed_on,
        station_id=p.station_id,
        performer_sub=cipher.decrypt(p.performer_sub_enc, context=PROCEDURE_PERFORMER),
        performer_role=p.performer_role,
        consent_given=p.consent_given,
        followup_plan=plan.code if plan else None,
        created_at=p.created_at,
    )


# -- problems -----------------------------------------------------------------------------------


class TaskChanged(Problem):
    """409: the record was made against a task that is closed or at another version. A class
    of its own so the route can tell a racing duplicate of the same record from a conflict."""

    def __init__(self) -> None:
        super().__init__(
            409,
            "task_changed",
            "任务已变更（已关闭、改派或被他人处理），记录未保存，请同步后重试",
            "The task changed (closed, reassigned or handled by someone else); nothing was saved",
        )


def task_changed() -> TaskChanged:
    return TaskChanged()


def _invalid(field: str, zh: str, en: str) -> Problem:
    return Problem(422, "validation_failed", zh, en, errors=[{"field": field, "message": zh}])


# -- visit records ------------------------------------------------------------------------------


def _may_record(task: Task, principal: Principal) -> None:
    """The task's assignee, or an officer whose region holds the person's village."""
    if task.assignee is not None and task.assignee == principal.sub:
        return
    if principal.role in (Role.township_officer, Role.county_officer):
        principal.require_region(task.region_code)
        return
    raise Problem(403, "forbidden", "只有任务的负责人或辖区干部可以记录随访", "Not your task")


async def _task(session: AsyncSession, task_id: str) -> Task:
    task = await session.get(Task, task_id, populate_existing=True)
    if task is None:
        raise not_found("随访任务", "Task")
    return task


async def existing_visit(
    session: AsyncSession, cipher: FieldCipher, task_id: str, record_id: str, principal: Principal
) -> VisitOut | None:
    """The record already sent under this id, or None. The same id on another task is not a
    duplicate but a phone's bug: refused rather than answered with another task's record."""
    record = await session.get(VisitRecord, record_id, populate_existing=True)
    if record is None:
        return None
    if record.task_id != task_id:
        raise Problem(
            409,
            "visit_id_reused",
            "该记录编号已用于另一任务的随访",
            "The record id was already used for another task",
        )
    if record.performer_sub != principal.sub:
        # The performer may always see their own record again (a batch re-sent after the task
        # was reassigned is still harmless); anyone else needs the right to record on the task.
        _may_record(await _task(session, task_id), principal)
    return _visit_out(record, cipher)


async def _next_task(session: AsyncSession, task: Task, record_id: str, kind: str, on: date) -> str:
    """The task a next step creates: an extra visit of the same plan and tier (window as long as
    the step's), or a referral to the township station. Keyed by the record (source_ref), so
    it is created once whatever happens to the record's retries."""
    if kind == "extra_visit":
        tier = task.tier
        step = f"{task.step}_extra"
        due, overdue, expires = (
            on,
            on + (task.overdue_on - task.due_on),
            on + (task.expires_on - task.due_on),
        )
        assignee = task.assignee
    else:
        tier = "township"
        step = f"{task.step}_referral"
        due = on
        overdue = on + timedelta(days=REFERRAL_OVERDUE_DAYS)
        expires = on + timedelta(days=REFERRAL_EXPIRY_DAYS)
        assignee = (await _assignees(session, task.region_code)).get(tier)
    now = utcnow()
    new_id = str(uuid.uuid4())
    row = {
        "id": new_id,
        "plan": task.plan,
        "step": step,
        "occurrence": 0,
        "person_id": task.person_id,
        "region_code": task.region_code,
        "tier": tier,
        "assignee": assignee,
        "anchor_on": task.anchor_on,
        "due_on": due,
        "overdue_on": overdue,
        "expires_on": expires,
        "source_ref": f"visit:{record_id}",
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }
    await session.execute(dialect_insert(session, _TASKS).values(row).on_conflict_do_nothing())
    return new_id


async def record_visit(
    uow: UnitOfWork, cipher: FieldCipher, task_id: str, body: VisitIn, principal: Principal
) -> tuple[int, VisitOut]:
    """Record a visit and close its task: 201 with the record, or 200 with the first record
    when the id was sent before. Raises 409 ``task_changed`` and writes nothing when the task
    is closed or not at ``body.task_version``."""
    s = uow.session
    record_id = str(body.id)
    task = await _task(s, task_id)
    first = await existing_visit(s, cipher, task_id, record_id, principal)
    if first is not None:
        return 200, first
    _may_record(task, principal)
    if task.closed is not None or task.version != body.task_version:
        raise task_changed()
    visit_day = body.performed_at.astimezone(clock.SHANGHAI).date()
    if visit_day > uow.clock.today():
        raise _invalid("performed_at", "随访时间不能晚于今天", "performed_at is in the future")
    errors = findings_errors(task_names(task)[2], body.findings)
    if errors:
        raise Problem(
            422,
            "validation_failed",
            "随访发现不符合该服务的记录表单（见 errors）",
            "The findings do not fit the service's form (see errors)",
            errors=errors,
        )
    given = body.consent.given
    nxt = body.next_step
    if nxt is not None and not given:
        # 知情选择: the person declined; nothing more is scheduled against their choice.
        raise _invalid(
            "next_step",
            "本人拒绝随访时不安排下一步",
            "No next step is scheduled when the person refused",
        )
    if isinstance(nxt, ExtraVisitIn) and not (
        visit_day < nxt.on <= visit_day + timedelta(days=EXTRA_VISIT_MAX_DAYS)
    ):
        raise _invalid(
            "next_step.on",
            f"加访日期应在随访日之后、{EXTRA_VISIT_MAX_DAYS} 天以内",
            f"The extra visit must fall after the visit and within {EXTRA_VISIT_MAX_DAYS} days",
        )
    closed = "done" if given else "declined"
    # The refusal's note is health data: it stays (encrypted) in the record, not in the task.
    reason = None if given else DECLINED_REASON
    closing = await s.execute(
        update(_TASKS)
        .where(
            _TASKS.c.id == task_id,
            _TASKS.c.version == body.task_version,
            _TASKS.c.closed.is_(None),
        )
        .values(
            closed=closed,
            closed_reason=reason,
            version=_TASKS.c.version + 1,
            updated_at=utcnow(),
        )
    )
    if closing.rowcount != 1:  # type: ignore[attr-defined]
        raise task_changed()  # closed or changed between our read and the UPDATE
    next_task_id = None
    if nxt is not None:
        on = nxt.on if isinstance(nxt, ExtraVisitIn) else visit_day
        next_task_id = await _next_task(s, task, record_id, nxt.kind, on)
    record = VisitRecord(
        id=record_id,
        task_id=task_id,
        person_id=task.person_id,
        performer_sub=principal.sub,
        performer_role=principal.role.value,
        performed_at=body.performed_at.astimezone(UTC),  # stored and answered in UTC
        place_enc=cipher.encrypt(body.place, context=VISIT_PLACE),
        consent="given" if given else "refused",
        consent_note_enc=_encrypt(cipher, body.consent.note, VISIT_CONSENT_NOTE),
        findings_enc=cipher.encrypt(
            json.dumps(body.findings, ensure_ascii=False, separators=(",", ":")),
            context=VISIT_FINDINGS,
        ),
        next_step=nxt.kind if nxt else None,
        next_step_on=nxt.on if isinstance(nxt, ExtraVisitIn) else None,
        next_step_note_enc=_encrypt(cipher, nxt.note if nxt else None, VISIT_NEXT_STEP_NOTE),
        next_task_id=next_task_id,
        task_version=body.task_version,
    )
    s.add(record)
    await s.flush()  # the same id racing in from another request fails here (primary key)
    uow.publish(
        VisitRecorded(
            visit_id=record.id,
            task_id=task.id,
            plan=task.plan,
            step=task.step,
            person_id=task.person_id,
            region_code=task.region_code,
            performer_sub=record.performer_sub,
            performed_at=record.performed_at,
            consent=record.consent,
            next_step=record.next_step,
            next_task_id=next_task_id,
        ),
        subject=record.id,
    )
    return 201, _visit_out(record, cipher)


async def list_visits(
    session: AsyncSession, cipher: FieldCipher, task_id: str, principal: Principal
) -> list[VisitOut]:
    task = await _task(session, task_id)
    if principal.role is Role.resident:
        if principal.person_id != task.person_id:
            raise Problem(403, "forbidden", "只能查看本人的随访记录", "Only your own visits")
    elif task.assignee != principal.sub:
        principal.require_region(task.region_code)
    rows = await session.scalars(
        select(VisitRecord)
        .where(VisitRecord.task_id == task_id)  # type: ignore[arg-type]
        .order_by(VisitRecord.performed_at, VisitRecord.id)  # type: ignore[arg-type]
    )
    return [_visit_out(r, cipher) for r in rows]


async def visits_of_tasks(
    session: AsyncSession, cipher: FieldCipher, task_ids: list[str]
) -> dict[str, list[VisitOut]]:
    """The visits recorded on each of ``task_ids`` (a sync page's closed tasks), oldest first:
    one query for the page, then the page's records decrypted. The caller has checked that the
    tasks are the reader's."""
    if not task_ids:
        return {}
    rows = await session.scalars(
        select(VisitRecord)
        .where(VisitRecord.task_id.in_(task_ids))  # type: ignore[attr-defined]
        .order_by(VisitRecord.performed_at, VisitRecord.id)  # type: ignore[arg-type]
    )
    out: dict[str, list[VisitOut]] = {}
    for r in rows:
        out.setdefault(r.task_id, []).append(_visit_out(r, cipher))
    return out


# -- procedures ---------------------------------------------------------------------------------


def plan_for_procedure(procedure: str) -> Plan | None:
    """The plan whose trigger names the procedure (plans.toml lets a procedure start at most
    one plan)."""
    for plan in plans().values():
        if plan.trigger.event == PROCEDURE_EVENT and procedure in plan.trigger.procedures:
            return plan
    return None


def known_procedures() -> list[str]:
    """The procedures the county's plans name: the catalogue a station records against."""
    return sorted(
        {
            p
            for plan in plans().values()
            if plan.trigger.event == PROCEDURE_EVENT
            for p in plan.trigger.procedures
        }
    )


async def record_procedure(
    uow: UnitOfWork, cipher: FieldCipher, body: ProcedureIn, principal: Principal
) -> tuple[int, ProcedureOut]:
    """Record a procedure, announce it and start its follow-up plan in one transaction."""
    if body.consent_given is not True:
        raise Problem(
            422,
            "consent_required",
            "未取得本人知情同意，不能记录手术",
            "The person's informed consent is required",
            errors=[{"field": "consent_given", "message": "须为 true（本人知情同意）"}],
        )
    known = known_procedures()
    if body.procedure not in known:
        raise _invalid(
            "procedure",
            f"未知的手术类型（可选 {', '.join(known)}）",
            f"Unknown procedure (one of {', '.join(known)})",
        )
    if body.performed_on > uow.clock.today():
        raise _invalid("performed_on", "手术日期不能晚于今天", "performed_on is in the future")
    s = uow.session
    if body.id is not None:
        first = await s.get(Procedure, str(body.id))
        if first is not None:
            principal.require_region(first.region_code)
            return 200, _procedure_out(first, cipher)
    person = await s.get(PersonFacts, body.person_id)
    if person is None:
        raise Problem(404, "unknown_person", "居民不存在", "Person not found")
    principal.require_region(person.region_code)
    if person.died_on is not None:
        raise _invalid("person_id", "该居民已去世", "The person has died")
    station = await s.get(Station, body.station_id)
    if station is None:
        raise Problem(
            422,
            "unknown_station",
            "站点不存在",
            "No such station",
            errors=[{"field": "station_id", "message": "站点不存在"}],
        )
    proc = Procedure(
        id=str(body.id or uuid.uuid4()),
        person_id=person.person_id,
        region_code=person.region_code,
        procedure_enc=cipher.encrypt(body.procedure, context=PROCEDURE_CODE),
        performed_on=body.performed_on,
        station_id=station.id,
        performer_sub_enc=cipher.encrypt(principal.sub, context=PROCEDURE_PERFORMER),
        performer_role=principal.role.value,
        consent_given=True,
    )
    s.add(proc)
    await s.flush()
    # No consumer needs what was done, so the event does not say it (health data; events are
    # stored in clear in the outbox and the stream).
    uow.publish(
        ProcedureRecorded(
            procedure_id=proc.id,
            person_id=proc.person_id,
            performed_on=proc.performed_on,
            region_code=proc.region_code,
            station_id=proc.station_id,
        ),
        subject=proc.id,
    )
    plan = plan_for_procedure(body.procedure)
    if plan is not None:
        # The person's facts are known (read above), so start_plan does not ask to retry.
        await start_plan(uow, plan, proc.person_id, proc.performed_on, source_ref=proc.id)
    # A procedure may end a plan early (IUD removal ends the IUD follow-ups): its runs end and
    # their open tasks are cancelled.
    await plan_runs.end_plan_for_procedure(uow, proc.person_id, body.procedure, proc.performed_on)
    return 201, _procedure_out(proc, cipher)
