"""Enrollments: manual application, the maker-checker lifecycle, lists, and the daily sweep.

Thin: the use cases are in ``services/benefits/enrolling.py``, the rules in ``domain/``.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from services.benefits import enrolling, sweeps
from services.benefits.api.access import Caller
from services.benefits.events import programs
from services.benefits.models import Enrollment
from shared.auth import Role
from shared.clock import AsOfQuery as AsOf
from shared.concurrency import etag, expected_version
from shared.errors import problem_responses
from shared.events.outbox import UnitOfWork
from shared.idempotency import run_idempotent
from shared.pagination import MAX_LIMIT, Page, decode_cursor, encode_cursor
from shared.service import RuntimeDep

router = APIRouter(tags=["enrollments"], responses=problem_responses())


class EnrollmentOut(BaseModel):
    id: str
    program: str
    program_name: str = ""
    person_id: str = Field(description="The beneficiary (for the childcare subsidy: the child)")
    payee_id: str = Field(description="Whose account is paid")
    case: str = Field(description="Which amount applies, e.g. child_died; usually empty")
    status: Literal["pending_review", "active", "suspended", "ended"]
    status_reason: str | None = Field(None, description="Why suspended or rejected (zh-CN)")
    region_code: str
    starts_on: date
    source: str = Field(description="certificate | child_born | death | age_sweep | application")
    source_ref: str
    pays_from: str = Field(description='First period owed, "YYYY-MM"')
    pays_until: str | None = Field(None, description="Last period owed; null: open-ended")
    settled_through: str | None = Field(None, description="Last period sent to the bank")
    reasons: list[str] = Field(description="Why eligible, sentence by sentence (zh-CN)")
    prepared_by: str = Field(description='The maker: an officer\'s sub, or "system"')
    confirmed_by: str | None = Field(None, description="The checker (another officer)")
    confirmed_at: datetime | None = None
    ended_reason: str | None = Field(
        None, description="death | certificate_revoked | child_died | age_out | rejected"
    )
    ends_after: str | None = Field(None, description='The last period paid, "YYYY-MM"')
    created_at: datetime
    version: int


def _out(row: Enrollment) -> EnrollmentOut:
    out = EnrollmentOut.model_validate(row, from_attributes=True)
    program = programs().get(row.program)
    out.program_name = program.name if program else ""
    return out


# Residents follow their own; local staff follow their region's.
# Who prepares a manual application (the maker).
# Who confirms, rejects, suspends and resumes (the checker).
IfMatch = Annotated[str | None, Header(description='The version you read, e.g. "3" (ETag)')]


# -- application ----------------------------------------------------------------------------------


class EvidenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    code: str = Field(min_length=1, max_length=40, examples=["disability_certificate"])
    ref: str = Field(min_length=1, max_length=200, examples=["upload-123"])


class ApplicationIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    program: str = Field(min_length=1, max_length=40, examples=["special_assistance"])
    person_id: str = Field(
        min_length=1, max_length=36, description="The beneficiary (a child: childcare)"
    )
    payee_id: str | None = Field(
        None,
        min_length=1,
        max_length=36,
        description="Whose account is paid; default the person (childcare: the mother)",
    )
    disabled_child_ids: list[str] = Field(
        default_factory=list,
        max_length=10,
        description="Children the officer declares disabled (needs evidence)",
    )
    evidence: list[EvidenceIn] = Field(default_factory=list, max_length=20)
    note: str | None = Field(None, max_length=200)


@router.post(
    "/enrollments",
    status_code=201,
    response_model=EnrollmentOut,
    summary="Apply for a program on a resident's behalf (pending a second officer's confirmation)",
    responses={422: {"description": "validation_failed, or not_eligible with `reasons`"}},
)
async def apply(body: ApplicationIn, request: Request, rt: RuntimeDep, principal: Caller):
    application = enrolling.Application(
        program=body.program,
        person_id=body.person_id,
        payee_id=body.payee_id,
        disabled_child_ids=tuple(body.disabled_child_ids),
        evidence=tuple((e.code, e.ref) for e in body.evidence),
        note=body.note,
    )

    async def action(uow: UnitOfWork) -> tuple[int, EnrollmentOut]:
        return 201, _out(await enrolling.apply(uow, application, principal))

    return await run_idempotent(request, principal, rt.uow(), rt.tables, action)


# -- reading --------------------------------------------------------------------------------------


@router.get(
    "/enrollments",
    response_model=Page[EnrollmentOut],
    summary="Enrollments by person, status and program; officers see their region",
)
async def list_enrollments(
    rt: RuntimeDep,
    principal: Caller,
    person_id: str | None = None,
    status: Literal["pending_review", "active", "suspended", "ended"] | None = None,
    program: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    cursor: str | None = None,
) -> Page[EnrollmentOut]:
    q = select(Enrollment).order_by(Enrollment.id).limit(limit + 1)
    async with rt.db.session() as s:
        if principal.role is Role.resident:
            q = q.where(await enrolling.visible_to_resident(s, principal))
        elif scope := principal.region_scope():
            q = q.where(Enrollment.region_code.startswith(scope))  # type: ignore[attr-defined]
        if person_id is not None:
            q = q.where(Enrollment.person_id == person_id)
        if status is not None:
            q = q.where(Enrollment.status == status)
        if program is not None:
            q = q.where(Enrollment.program == program)
        after = decode_cursor(cursor, 1)
        if after:
            q = q.where(Enrollment.id > after[0])
        rows = list((await s.scalars(q)).all())
    items = [_out(r) for r in rows[:limit]]
    return Page[EnrollmentOut](
        items=items, next_cursor=encode_cursor(items[-1].id) if len(rows) > limit else None
    )


@router.get(
    "/enrollments/{enrollment_id}",
    response_model=EnrollmentOut,
    summary="One enrollment with its reasons, months, settlement and who prepared/confirmed it",
)
async def get_enrollment(
    enrollment_id: str, response: Response, rt: RuntimeDep, principal: Caller
) -> EnrollmentOut:
    async with rt.db.session() as s:
        row = await enrolling.get_for(s, enrollment_id, principal)
    response.headers["ETag"] = etag(row.version)
    return _out(row)


# -- lifecycle ------------------------------------------------------------------------------------


class ConfirmIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int | None = Field(None, description="The version you read (or send If-Match)")


class ReasonIn(ConfirmIn):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: str = Field(min_length=1, max_length=200, examples=["外出务工，暂停发放"])


class ResumeIn(ConfirmIn):
    payee_id: str | None = Field(
        None,
        min_length=1,
        max_length=36,
        description="A new payee (required when the payee has died)",
    )


@router.post(
    "/enrollments/{enrollment_id}/confirm",
    response_model=EnrollmentOut,
    summary="Confirm a pending enrollment (an officer other than the one who prepared it)",
    responses={403: {"description": "forbidden, out_of_region, or maker_checker"}},
)
async def confirm(
    enrollment_id: str,
    body: ConfirmIn,
    response: Response,
    rt: RuntimeDep,
    principal: Caller,
    if_match: IfMatch = None,
) -> EnrollmentOut:
    expected = expected_version(if_match, body.version)
    async with rt.uow() as uow:
        row = await enrolling.confirm(uow, enrollment_id, expected, principal)
        await uow.commit()
    response.headers["ETag"] = etag(row.version)
    return _out(row)


@router.post(
    "/enrollments/{enrollment_id}/reject",
    response_model=EnrollmentOut,
    summary="Reject a pending enrollment, with the reason (it ends; nothing is owed)",
)
async def reject(
    enrollment_id: str,
    body: ReasonIn,
    response: Response,
    rt: RuntimeDep,
    principal: Caller,
    if_match: IfMatch = None,
) -> EnrollmentOut:
    expected = expected_version(if_match, body.version)
    async with rt.uow() as uow:
        row = await enrolling.reject(uow, enrollment_id, expected, body.reason, principal)
        await uow.commit()
    response.headers["ETag"] = etag(row.version)
    return _out(row)


@router.post(
    "/enrollments/{enrollment_id}/suspend",
    response_model=EnrollmentOut,
    summary="Suspend an active enrollment, with the reason (nothing is paid meanwhile)",
)
async def suspend(
    enrollment_id: str,
    body: ReasonIn,
    response: Response,
    rt: RuntimeDep,
    principal: Caller,
    if_match: IfMatch = None,
) -> EnrollmentOut:
    expected = expected_version(if_match, body.version)
    async with rt.uow() as uow:
        row = await enrolling.suspend(uow, enrollment_id, expected, body.reason, principal)
        await uow.commit()
    response.headers["ETag"] = etag(row.version)
    return _out(row)


@router.post(
    "/enrollments/{enrollment_id}/resume",
    response_model=EnrollmentOut,
    summary=(
        "Resume a suspended enrollment (optionally to a new payee); the months owed while "
        "suspended are back pay in the next payment run"
    ),
)
async def resume(
    enrollment_id: str,
    body: ResumeIn,
    response: Response,
    rt: RuntimeDep,
    principal: Caller,
    if_match: IfMatch = None,
) -> EnrollmentOut:
    expected = expected_version(if_match, body.version)
    async with rt.uow() as uow:
        row = await enrolling.resume(uow, enrollment_id, expected, principal, body.payee_id)
        await uow.commit()
    response.headers["ETag"] = etag(row.version)
    return _out(row)


# -- the daily sweep, on demand -----------------------------------------------------------------


class SweepOut(BaseModel):
    as_of: date
    period: str
    created: list[str] = Field(description="Enrollments founded (rural reward at 60)")
    aged_out: list[str] = Field(description="Enrollments ended with reason age_out")


@router.post(
    "/admin/sweeps/enrollments",
    response_model=SweepOut,
    tags=["admin"],
    summary="Run the daily enrollment sweep for a given day (default: today in Beijing)",
)
async def run_sweep(rt: RuntimeDep, _: Caller, as_of: AsOf = None) -> SweepOut:
    result = await sweeps.sweep_enrollments(rt, as_of or rt.clock.today())
    return SweepOut(
        as_of=result.as_of, period=result.period, created=result.created, aged_out=result.aged_out
    )
