"""Stations, slots and appointments for checks (预约): thin routes over ``appointments``."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import BaseModel, Field

from services.visits import appointments
from services.visits.api.access import Caller
from services.visits.appointments import (
    AppointmentOut,
    BookIn,
    RescheduleIn,
    Service,
    SlotIn,
    SlotOut,
    StationIn,
    StationOut,
    TransitionIn,
)
from shared.auth import Principal
from shared.clock import AsOfQuery as AsOf
from shared.concurrency import etag, expected_version
from shared.errors import problem_responses
from shared.idempotency import run_idempotent
from shared.pagination import MAX_LIMIT, Page
from shared.service import RuntimeDep

router = APIRouter(tags=["appointments"], responses=problem_responses())

# Stations and their seats are opened, and attendance recorded, by township or county staff.
# A resident for themself; local staff for a resident of their region (checked in the use case).
IfMatch = Annotated[str | None, Header(description='The version you read, e.g. "3" (ETag)')]


def _version(if_match: str | None, body: TransitionIn | RescheduleIn | None) -> int | None:
    """The version the caller read, if they sent one; the transition is guarded either way."""
    body_version = body.version if body is not None else None
    if if_match is None and body_version is None:
        return None
    return expected_version(if_match, body_version).version


@router.post(
    "/stations",
    status_code=201,
    response_model=StationOut,
    summary="Open a station serving a township (9 digits) or district (6 digits)",
)
async def create_station(body: StationIn, request: Request, rt: RuntimeDep, principal: Caller):
    return await run_idempotent(
        request,
        principal,
        rt.uow(),
        rt.tables,
        lambda uow: appointments.create_station(uow, body, principal),
    )


@router.post(
    "/slots",
    status_code=201,
    response_model=SlotOut,
    summary="Open a slot of seats for one service at a station",
)
async def create_slot(body: SlotIn, request: Request, rt: RuntimeDep, principal: Caller):
    return await run_idempotent(
        request,
        principal,
        rt.uow(),
        rt.tables,
        lambda uow: appointments.create_slot(uow, body, principal),
    )


@router.get("/slots", response_model=Page[SlotOut], summary="Slots with their remaining seats")
async def list_slots(
    rt: RuntimeDep,
    _: Caller,
    station_id: str | None = None,
    service: Service | None = None,
    starts_from: Annotated[datetime | None, Query(alias="from")] = None,
    starts_to: Annotated[datetime | None, Query(alias="to")] = None,
    available: Annotated[
        bool, Query(description="Only slots not started yet with a seat left")
    ] = False,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    cursor: str | None = None,
) -> Page[SlotOut]:
    async with rt.db.session() as s:
        return await appointments.list_slots(
            s,
            station_id=station_id,
            service=service,
            starts_from=starts_from,
            starts_to=starts_to,
            available=available,
            now=rt.clock.now(),
            limit=limit,
            cursor=cursor,
        )


@router.post(
    "/appointments",
    status_code=201,
    response_model=AppointmentOut,
    summary="Book a seat (Idempotency-Key accepted); a full slot answers 409 slot_full",
)
async def book(body: BookIn, request: Request, rt: RuntimeDep, principal: Caller):
    return await run_idempotent(
        request,
        principal,
        rt.uow(),
        rt.tables,
        lambda uow: appointments.book(uow, body, principal),
    )


@router.get(
    "/appointments",
    response_model=Page[AppointmentOut],
    summary="Appointments: a resident's own, or a region's",
)
async def list_appointments(
    rt: RuntimeDep,
    principal: Caller,
    person_id: str | None = None,
    station_id: str | None = None,
    status: Annotated[str | None, Query(pattern="^(booked|cancelled|attended|no_show)$")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    cursor: str | None = None,
) -> Page[AppointmentOut]:
    async with rt.db.session() as s:
        return await appointments.list_appointments(
            s,
            principal,
            person_id=person_id,
            station_id=station_id,
            status=status,
            limit=limit,
            cursor=cursor,
        )


@router.get("/appointments/{appointment_id}", response_model=AppointmentOut, summary="One")
async def get_appointment(
    appointment_id: str, response: Response, rt: RuntimeDep, principal: Caller
) -> AppointmentOut:
    async with rt.db.session() as s:
        out = await appointments.get_appointment(s, appointment_id, principal)
    response.headers["ETag"] = etag(out.version)
    return out


@router.post(
    "/appointments/{appointment_id}/cancel",
    response_model=AppointmentOut,
    summary="Cancel and give the seat back",
)
async def cancel(
    appointment_id: str,
    rt: RuntimeDep,
    principal: Caller,
    body: TransitionIn | None = None,
    if_match: IfMatch = None,
) -> AppointmentOut:
    version = _version(if_match, body)
    async with rt.uow() as uow:
        out = await appointments.cancel(
            uow, appointment_id, TransitionIn(version=version), principal
        )
        await uow.commit()
        return out


@router.post(
    "/appointments/{appointment_id}/reschedule",
    response_model=AppointmentOut,
    summary="Move to another slot atomically; a full slot leaves the appointment as it was",
)
async def reschedule(
    appointment_id: str,
    body: RescheduleIn,
    rt: RuntimeDep,
    principal: Caller,
    if_match: IfMatch = None,
) -> AppointmentOut:
    body.version = _version(if_match, body)
    async with rt.uow() as uow:
        out = await appointments.reschedule(uow, appointment_id, body, principal)
        await uow.commit()
        return out


async def _attendance(
    rt: RuntimeDep,
    appointment_id: str,
    outcome: Literal["attended", "no_show"],
    principal: Principal,
    body: TransitionIn | None,
    if_match: str | None,
) -> AppointmentOut:
    version = _version(if_match, body)
    async with rt.uow() as uow:
        out = await appointments.record_attendance(
            uow, appointment_id, outcome, TransitionIn(version=version), principal
        )
        await uow.commit()
        return out


@router.post(
    "/appointments/{appointment_id}/attended",
    response_model=AppointmentOut,
    summary="Station staff: the person came (once the slot has started)",
)
async def attended(
    appointment_id: str,
    rt: RuntimeDep,
    principal: Caller,
    body: TransitionIn | None = None,
    if_match: IfMatch = None,
) -> AppointmentOut:
    return await _attendance(rt, appointment_id, "attended", principal, body, if_match)


@router.post(
    "/appointments/{appointment_id}/no-show",
    response_model=AppointmentOut,
    summary="Station staff: the person did not come (once the slot has started)",
)
async def no_show(
    appointment_id: str,
    rt: RuntimeDep,
    principal: Caller,
    body: TransitionIn | None = None,
    if_match: IfMatch = None,
) -> AppointmentOut:
    return await _attendance(rt, appointment_id, "no_show", principal, body, if_match)


# -- the reminder worker, on demand -------------------------------------------------------------


class RemindersOut(BaseModel):
    as_of: date
    reminded: list[str] = Field(description="Appointments reminded by this run")


@router.post(
    "/admin/reminders",
    response_model=RemindersOut,
    tags=["admin"],
    summary="Send the day-before reminders for slots on the day after as_of (default today)",
)
async def run_reminders(rt: RuntimeDep, _: Caller, as_of: AsOf = None) -> RemindersOut:
    result = await appointments.send_reminders(rt, as_of or rt.clock.today())
    return RemindersOut(as_of=result.as_of, reminded=result.reminded)
