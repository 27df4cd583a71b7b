"""Appointments for checks at stations (预约): stations, slots, booking, moving, cancelling,
recording attendance, and the day-before reminders.

Capacity holds under concurrency on SQLite and PostgreSQL because the only writes that move a
slot's ``booked`` count are conditional UPDATEs the database decides:

- a seat is taken by ``UPDATE slots SET booked = booked + 1 ... WHERE id = :id AND booked <
  capacity``: 0 rows means full. PostgreSQL re-checks the condition on the latest row version
  after waiting for a racing writer's commit; SQLite has one writer at a time. Either way no
  interleaving can take more seats than there are (and a CHECK constraint says so too).
- a seat is given back only after the appointment's own guarded transition (status booked and
  the version read) wrote one row, so of two racing cancels exactly one frees a seat.

Locks are always taken in the same order — the appointment row first, then slot rows in id
order — so a cancel and a reschedule of crossing slots cannot deadlock on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.visits.events import (
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentReminder,
    AppointmentRescheduled,
)
from services.visits.models import Appointment, PersonFacts, Slot, Station
from shared.auth import Principal, Role
from shared.clock import SHANGHAI
from shared.concurrency import versioned_update
from shared.db import utcnow
from shared.errors import LocalizedValueError, Problem, not_found
from shared.events.outbox import UnitOfWork
from shared.pagination import Page, after_time_cursor, cursor_time, decode_cursor, encode_cursor

if TYPE_CHECKING:
    from shared.service import Runtime

log = logging.getLogger("lingju.visits.appointments")

REMINDER_INTERVAL_SECONDS = 600

Service = Literal["pre_pregnancy_check", "postpartum_42d_check", "cervical_breast_screening"]
# What a resident reads (the ``service_name`` of appointment events).
SERVICE_NAMES: dict[str, str] = {
    "pre_pregnancy_check": "免费孕前优生健康检查",
    "postpartum_42d_check": "产后42天健康检查",
    "cervical_breast_screening": "宫颈癌、乳腺癌筛查",
}
Tier = Literal["township", "district"]
Status = Literal["booked", "cancelled", "attended", "no_show"]
BOOKED: Status = "booked"

# Station staff: they open stations and slots and record who came.
STATION_STAFF = frozenset({Role.township_officer, Role.county_officer})

_SLOTS = Slot.__table__
_APPTS = Appointment.__table__


# -- shapes -------------------------------------------------------------------------------------


def _utc(value: datetime) -> datetime:
    """A query bound in UTC (naive taken as UTC): SQLite compares timestamps as text."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _aware(value: datetime) -> datetime:
    # A naive time would be read as UTC by some clients and as Beijing time by others.
    if value.tzinfo is None or value.utcoffset() is None:
        raise LocalizedValueError(
            "时间须带时区，如 2026-03-01T08:00:00+08:00",
            "A time zone is required, e.g. 2026-03-01T08:00:00+08:00",
        )
    # Stored in UTC: SQLite compares timestamps as text, so every one must share one offset.
    return value.astimezone(UTC)


class StationIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    name: str = Field(min_length=1, max_length=100, examples=["清波街道社区卫生服务中心"])
    region_code: str = Field(
        pattern=r"^(\d{6}|\d{9})$",
        description="The 9-digit township or 6-digit district the station serves",
        examples=["330102001"],
    )
    tier: Tier | None = Field(default=None, description="Derived from region_code if absent")

    @model_validator(mode="after")
    def _tier_matches(self) -> StationIn:
        derived: Tier = "township" if len(self.region_code) == 9 else "district"
        if self.tier is not None and self.tier != derived:
            raise LocalizedValueError(
                "站点层级与辖区代码不符：乡镇站为 9 位代码，区县指导站为 6 位代码",
                "tier does not match region_code: township 9 digits, district 6 digits",
            )
        self.tier = derived
        return self


class StationOut(BaseModel):
    id: str
    name: str
    region_code: str
    tier: Tier
    created_at: datetime


class SlotIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    station_id: str = Field(min_length=1, max_length=36)
    service: Service
    starts_at: datetime = Field(examples=["2026-03-01T08:00:00+08:00"])
    ends_at: datetime = Field(examples=["2026-03-01T11:30:00+08:00"])
    capacity: int = Field(ge=1, le=1000, examples=[10])

    _aware_times = field_validator("starts_at", "ends_at")(_aware)

    @model_validator(mode="after")
    def _ordered(self) -> SlotIn:
        if self.ends_at <= self.starts_at:
            raise LocalizedValueError("结束时间须晚于开始时间", "ends_at must be after starts_at")
        return self


class SlotOut(BaseModel):
    id: str
    station_id: str
    station_name: str
    region_code: str = Field(description="The station's division code")
    service: Service
    starts_at: datetime
    ends_at: datetime
    capacity: int
    booked: int
    remaining: int
    version: int


class BookIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    slot_id: str = Field(min_length=1, max_length=36)
    person_id: str = Field(min_length=1, max_length=36)


class RescheduleIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    slot_id: str = Field(min_length=1, max_length=36, description="The slot to move to")
    version: int | None = Field(default=None, ge=1, description="The version you read, if any")


class TransitionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int | None = Field(default=None, ge=1, description="The version you read, if any")


class AppointmentOut(BaseModel):
    id: str
    slot_id: str
    person_id: str
    station_id: str
    station_name: str
    service: Service
    starts_at: datetime
    ends_at: datetime
    status: Status
    booked_by: str
    booked_by_role: str
    reminded_at: datetime | None = None
    created_at: datetime
    version: int


def _slot_out(slot: Slot, station: Station) -> SlotOut:
    return SlotOut(
        id=slot.id,
        station_id=slot.station_id,
        station_name=station.name,
        region_code=station.region_code,
        service=slot.service,  # type: ignore[arg-type]
        starts_at=slot.starts_at,
        ends_at=slot.ends_at,
        capacity=slot.capacity,
        booked=slot.booked,
        remaining=max(slot.capacity - slot.booked, 0),
        version=slot.version,
    )


def _appt_out(a: Appointment, slot: Slot, station: Station) -> AppointmentOut:
    return AppointmentOut(
        id=a.id,
        slot_id=a.slot_id,
        person_id=a.person_id,
        station_id=station.id,
        station_name=station.name,
        service=slot.service,  # type: ignore[arg-type]
        starts_at=slot.starts_at,
        ends_at=slot.ends_at,
        status=a.status,  # type: ignore[arg-type]
        booked_by=a.booked_by,
        booked_by_role=a.booked_by_role,
        reminded_at=a.reminded_at,
        created_at=a.created_at,
        version=a.version,
    )


# -- problems -----------------------------------------------------------------------------------


def slot_full(slot: Slot) -> Problem:
    return Problem(
        409,
        "slot_full",
        f"该时段号源已约满（共 {slot.capacity} 个），请选择其他时段",
        f"The slot is fully booked ({slot.capacity} seats); choose another",
    )


def _slot_past() -> Problem:
    return Problem(
        422,
        "slot_in_past",
        "该时段已开始或已过去，不能预约",
        "The slot has started or is over; it cannot be booked",
        errors=[{"field": "slot_id", "message": "该时段已开始或已过去"}],
    )


def _not_booked(a: Appointment) -> Problem:
    return Problem(
        409,
        "invalid_transition",
        f"预约当前状态为 {a.status}，只能处理已预约（booked）的预约",
        f"The appointment is {a.status}; only booked appointments can change",
    )


def _changed() -> Problem:
    return Problem(
        409,
        "version_conflict",
        "预约已被他人同时修改，请刷新后重试",
        "The appointment was changed at the same time; reload",
    )


# -- reading ------------------------------------------------------------------------------------


async def _fresh_slot(session: AsyncSession, slot_id: str) -> Slot | None:
    # populate_existing: the count is moved by bulk UPDATEs, never through the identity map.
    return await session.get(Slot, slot_id, populate_existing=True)


async def _slot_and_station(session: AsyncSession, slot_id: str) -> tuple[Slot, Station]:
    slot = await _fresh_slot(session, slot_id)
    if slot is None:
        raise not_found("预约时段", "Slot")
    station = await session.get(Station, slot.station_id)
    assert station is not None  # a foreign key
    return slot, station


async def _appointment(session: AsyncSession, appointment_id: str) -> Appointment:
    a = await session.get(Appointment, appointment_id, populate_existing=True)
    if a is None:
        raise not_found("预约", "Appointment")
    return a


def _require_started(slot: Slot, now: datetime) -> None:
    if now < slot.starts_at:
        raise Problem(
            422,
            "slot_not_started",
            "该时段尚未开始，不能登记到诊或爽约",
            "The slot has not started; attendance cannot be recorded yet",
        )


def _require_future(slot: Slot, now: datetime) -> None:
    if slot.starts_at <= now:
        raise _slot_past()


def _require_acting_for(principal: Principal, person: PersonFacts) -> None:
    """A resident acts for themself; staff for persons of their region."""
    if principal.role is Role.resident:
        if principal.person_id != person.person_id:
            raise _own_only()
        return
    principal.require_region(person.region_code)


def _own_only() -> Problem:
    return Problem(
        403, "forbidden", "居民只能为本人预约或查看本人的预约", "Residents act only for themselves"
    )


def _may_touch(principal: Principal, a: Appointment) -> None:
    """Who may cancel or move: the resident themself, or staff of the person's or the
    station's region (a station may cancel when it closes for the day)."""
    if principal.role is Role.resident:
        if principal.person_id != a.person_id:
            raise _own_only()
        return
    if not (principal.covers(a.person_region) or principal.covers(a.station_region)):
        principal.require_region(a.person_region)  # raises out_of_region


# -- seats --------------------------------------------------------------------------------------


async def take_seat(session: AsyncSession, slot_id: str) -> bool:
    """ONE conditional UPDATE: True if a seat was taken, False if the slot was full."""
    result = await session.execute(
        update(_SLOTS)
        .where(_SLOTS.c.id == slot_id, _SLOTS.c.booked < _SLOTS.c.capacity)
        .values(booked=_SLOTS.c.booked + 1, version=_SLOTS.c.version + 1)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def free_seat(session: AsyncSession, slot_id: str) -> None:
    """Only called after the appointment's own guarded transition wrote its row."""
    await session.execute(
        update(_SLOTS)
        .where(_SLOTS.c.id == slot_id, _SLOTS.c.booked > 0)
        .values(booked=_SLOTS.c.booked - 1, version=_SLOTS.c.version + 1)
    )


# -- stations and slots -------------------------------------------------------------------------


async def create_station(
    uow: UnitOfWork, body: StationIn, principal: Principal
) -> tuple[int, StationOut]:
    principal.require_region(body.region_code)
    assert body.tier is not None  # the validator derives it
    station = Station(
        id=str(uuid.uuid4()),
        name=body.name,
        region_code=body.region_code,
        tier=body.tier,
        created_by=principal.sub,
    )
    uow.session.add(station)
    await uow.session.flush()
    return 201, StationOut(
        id=station.id,
        name=station.name,
        region_code=station.region_code,
        tier=body.tier,
        created_at=station.created_at,
    )


async def create_slot(uow: UnitOfWork, body: SlotIn, principal: Principal) -> tuple[int, SlotOut]:
    s = uow.session
    station = await s.get(Station, body.station_id)
    if station is None:
        raise Problem(
            422,
            "unknown_station",
            "站点不存在",
            "No such station",
            errors=[{"field": "station_id", "message": "站点不存在"}],
        )
    principal.require_region(station.region_code)
    if body.starts_at <= uow.clock.now():
        raise Problem(
            422,
            "validation_failed",
            "开始时间须在将来",
            "starts_at must be in the future",
            errors=[{"field": "starts_at", "message": "开始时间须在将来"}],
        )
    slot = Slot(
        id=str(uuid.uuid4()),
        station_id=station.id,
        service=body.service,
        starts_at=body.starts_at,
        ends_at=body.ends_at,
        capacity=body.capacity,
        booked=0,
        created_by=principal.sub,
    )
    s.add(slot)
    await s.flush()
    return 201, _slot_out(slot, station)


async def list_slots(
    session: AsyncSession,
    *,
    station_id: str | None,
    service: str | None,
    starts_from: datetime | None,
    starts_to: datetime | None,
    available: bool,
    now: datetime,
    limit: int,
    cursor: str | None,
) -> Page[SlotOut]:
    """By start time; ``available`` keeps slots with a seat left that have not started."""
    q = select(Slot, Station).join(Station, Station.id == Slot.station_id)  # type: ignore[arg-type]
    if station_id is not None:
        q = q.where(Slot.station_id == station_id)
    if service is not None:
        q = q.where(Slot.service == service)
    if starts_from is not None:
        q = q.where(Slot.starts_at >= _utc(starts_from))  # type: ignore[arg-type]
    if starts_to is not None:
        q = q.where(Slot.starts_at < _utc(starts_to))  # type: ignore[arg-type]
    if available:
        q = q.where(Slot.booked < Slot.capacity, Slot.starts_at > now)  # type: ignore[arg-type]
    after = decode_cursor(cursor, 2)
    if after:
        at = cursor_time(after[0])
        q = q.where(
            or_(
                Slot.starts_at > at,  # type: ignore[arg-type]
                and_(Slot.starts_at == at, Slot.id > after[1]),  # type: ignore[arg-type]
            )
        )
    q = q.order_by(Slot.starts_at, Slot.id).limit(limit + 1)  # type: ignore[arg-type]
    rows = list((await session.execute(q)).all())
    page = rows[:limit]
    last = page[-1][0] if len(rows) > limit else None
    return Page[SlotOut](
        items=[_slot_out(slot, station) for slot, station in page],
        next_cursor=encode_cursor(last.starts_at.isoformat(), last.id) if last else None,
    )


# -- booking ------------------------------------------------------------------------------------


async def _require_no_live(session: AsyncSession, slot_id: str, person_id: str) -> None:
    live = await session.scalar(
        select(Appointment.id).where(
            Appointment.slot_id == slot_id,
            Appointment.person_id == person_id,
            Appointment.status == BOOKED,
        )
    )
    if live is not None:
        raise _already_booked()


def _already_booked() -> Problem:
    return Problem(
        409,
        "already_booked",
        "该居民已预约此时段",
        "The person already has a booking in this slot",
    )


async def book(uow: UnitOfWork, body: BookIn, principal: Principal) -> tuple[int, AppointmentOut]:
    s = uow.session
    if principal.role is Role.resident and body.person_id != principal.person_id:
        # Before any lookup: a resident learns nothing about other persons.
        raise _own_only()
    person = await s.get(PersonFacts, body.person_id)
    if person is None:
        raise Problem(404, "unknown_person", "居民不存在", "Person not found")
    _require_acting_for(principal, person)
    slot = await _fresh_slot(s, body.slot_id)
    if slot is None:
        raise Problem(
            404,
            "not_found",
            "预约时段不存在",
            "Slot not found",
            errors=[{"field": "slot_id", "message": "预约时段不存在"}],
        )
    station = await s.get(Station, slot.station_id)
    assert station is not None
    _require_future(slot, uow.clock.now())
    await _require_no_live(s, slot.id, person.person_id)
    # The seat first: it is the first write of the transaction, so on SQLite the write lock
    # is taken here, and a full slot costs nothing more.
    if not await take_seat(s, slot.id):
        raise slot_full(slot)
    appt = Appointment(
        id=str(uuid.uuid4()),
        slot_id=slot.id,
        person_id=person.person_id,
        person_region=person.region_code,
        station_id=station.id,
        station_region=station.region_code,
        status=BOOKED,
        booked_by=principal.sub,
        booked_by_role=principal.role.value,
    )
    s.add(appt)
    try:
        await s.flush()
    except IntegrityError as e:
        # A racing booking of the same person and slot committed first (partial unique
        # index): the whole transaction, seat included, is rolled back by the caller.
        raise _already_booked() from e
    uow.publish(
        AppointmentBooked(
            appointment_id=appt.id,
            person_id=person.person_id,
            slot_id=slot.id,
            station_id=station.id,
            station_name=station.name,
            service=slot.service,
            service_name=SERVICE_NAMES[slot.service],
            starts_at=slot.starts_at,
            ends_at=slot.ends_at,
            region_code=person.region_code,
            booked_by_role=principal.role.value,
        ),
        subject=appt.id,
    )
    return 201, _appt_out(appt, slot, station)


async def _guard(uow: UnitOfWork, a: Appointment, version: int | None, **values: Any) -> None:
    """Move the appointment only if it is still booked at the version read: one racer wins."""
    if version is not None and version != a.version:
        raise _changed()
    written = await versioned_update(
        uow.session,
        Appointment,
        a.id,
        Appointment.status == BOOKED,
        Appointment.version == a.version,
        **values,
    )
    if not written:
        raise _changed()


async def cancel(
    uow: UnitOfWork, appointment_id: str, body: TransitionIn, principal: Principal
) -> AppointmentOut:
    s = uow.session
    a = await _appointment(s, appointment_id)
    _may_touch(principal, a)
    if a.status != BOOKED:
        raise _not_booked(a)
    await _guard(uow, a, body.version, status="cancelled", closed_by=principal.sub)
    # Reached only by the one cancel whose transition wrote: the seat is freed once.
    await free_seat(s, a.slot_id)
    slot, station = await _slot_and_station(s, a.slot_id)
    a = await _appointment(s, appointment_id)
    uow.publish(
        AppointmentCancelled(
            appointment_id=a.id,
            person_id=a.person_id,
            slot_id=slot.id,
            station_name=station.name,
            service=slot.service,
            service_name=SERVICE_NAMES[slot.service],
            starts_at=slot.starts_at,
            region_code=a.person_region,
            cancelled_by_role=principal.role.value,
        ),
        subject=a.id,
    )
    return _appt_out(a, slot, station)


async def reschedule(
    uow: UnitOfWork, appointment_id: str, body: RescheduleIn, principal: Principal
) -> AppointmentOut:
    """Take the new seat and free the old in one transaction: if the new slot is full,
    nothing is written and the appointment keeps its old seat."""
    s = uow.session
    a = await _appointment(s, appointment_id)
    _may_touch(principal, a)
    if a.status != BOOKED:
        raise _not_booked(a)
    old_slot_id = a.slot_id
    if body.slot_id == old_slot_id:
        raise Problem(
            422,
            "validation_failed",
            "新时段与原时段相同",
            "The new slot is the current one",
            errors=[{"field": "slot_id", "message": "新时段与原时段相同"}],
        )
    new_slot = await _fresh_slot(s, body.slot_id)
    if new_slot is None:
        raise not_found("预约时段", "Slot")
    new_station = await s.get(Station, new_slot.station_id)
    assert new_station is not None
    _require_future(new_slot, uow.clock.now())
    await _require_no_live(s, new_slot.id, a.person_id)
    # The appointment row first (as cancel does), then the slots in id order.
    try:
        await _guard(
            uow,
            a,
            body.version,
            slot_id=new_slot.id,
            station_id=new_station.id,
            station_region=new_station.region_code,
            reminded_at=None,  # a new day: remind again
        )
    except IntegrityError as e:
        raise _already_booked() from e  # a racing booking of the same person took it
    for slot_id in sorted((old_slot_id, new_slot.id)):
        if slot_id == old_slot_id:
            await free_seat(s, old_slot_id)
        elif not await take_seat(s, new_slot.id):
            raise slot_full(new_slot)  # the caller rolls everything back
    a = await _appointment(s, appointment_id)
    new_slot, new_station = await _slot_and_station(s, new_slot.id)
    uow.publish(
        AppointmentRescheduled(
            appointment_id=a.id,
            person_id=a.person_id,
            from_slot_id=old_slot_id,
            slot_id=new_slot.id,
            station_id=new_station.id,
            station_name=new_station.name,
            service=new_slot.service,
            service_name=SERVICE_NAMES[new_slot.service],
            starts_at=new_slot.starts_at,
            ends_at=new_slot.ends_at,
            region_code=a.person_region,
        ),
        subject=a.id,
    )
    return _appt_out(a, new_slot, new_station)


async def record_attendance(
    uow: UnitOfWork,
    appointment_id: str,
    outcome: Literal["attended", "no_show"],
    body: TransitionIn,
    principal: Principal,
) -> AppointmentOut:
    """Station staff say who came, once the slot has started. The seat stays taken."""
    s = uow.session
    a = await _appointment(s, appointment_id)
    principal.require_region(a.station_region)
    if a.status != BOOKED:
        raise _not_booked(a)
    slot, station = await _slot_and_station(s, a.slot_id)
    _require_started(slot, uow.clock.now())
    await _guard(uow, a, body.version, status=outcome, closed_by=principal.sub)
    a = await _appointment(s, appointment_id)
    return _appt_out(a, slot, station)


async def get_appointment(
    session: AsyncSession, appointment_id: str, principal: Principal
) -> AppointmentOut:
    a = await _appointment(session, appointment_id)
    _may_touch(principal, a)
    slot, station = await _slot_and_station(session, a.slot_id)
    return _appt_out(a, slot, station)


async def list_appointments(
    session: AsyncSession,
    principal: Principal,
    *,
    person_id: str | None,
    station_id: str | None,
    status: str | None,
    limit: int,
    cursor: str | None,
) -> Page[AppointmentOut]:
    """Oldest booking first; residents see their own, staff those of their region (by the
    person's or the station's division code)."""
    q = (
        select(Appointment, Slot, Station)
        .join(Slot, Slot.id == Appointment.slot_id)  # type: ignore[arg-type]
        .join(Station, Station.id == Slot.station_id)  # type: ignore[arg-type]
    )
    if principal.role is Role.resident:
        if not principal.person_id or (person_id is not None and person_id != principal.person_id):
            raise _own_only()
        person_id = principal.person_id
    elif scope := principal.region_scope():
        q = q.where(
            or_(
                Appointment.person_region.startswith(scope),  # type: ignore[attr-defined]
                Appointment.station_region.startswith(scope),  # type: ignore[attr-defined]
            )
        )
    if person_id is not None:
        q = q.where(Appointment.person_id == person_id)
    if station_id is not None:
        q = q.where(Appointment.station_id == station_id)
    if status is not None:
        q = q.where(Appointment.status == status)
    after = after_time_cursor(cursor, Appointment.created_at, Appointment.id)
    if after is not None:
        q = q.where(after)
    q = q.order_by(Appointment.created_at, Appointment.id).limit(limit + 1)  # type: ignore[arg-type]
    rows = list((await session.execute(q)).all())
    page = rows[:limit]
    last = page[-1][0] if len(rows) > limit else None
    return Page[AppointmentOut](
        items=[_appt_out(a, slot, station) for a, slot, station in page],
        next_cursor=encode_cursor(last.created_at.isoformat(), last.id) if last else None,
    )


# -- reminders ----------------------------------------------------------------------------------


@dataclass
class ReminderResult:
    as_of: date
    reminded: list[str] = field(default_factory=list)  # appointment ids


def tomorrow_window(as_of: date) -> tuple[datetime, datetime]:
    """The Asia/Shanghai day after ``as_of``, as an aware half-open interval."""
    start = datetime.combine(as_of + timedelta(days=1), time(0), tzinfo=SHANGHAI)
    # In UTC, as stored: SQLite compares timestamps as text.
    return start.astimezone(UTC), (start + timedelta(days=1)).astimezone(UTC)


async def run_reminders(rt: Runtime) -> None:
    """A worker: remind at start, then every ten minutes, for tomorrow in Beijing. Bookings
    made during the day for tomorrow are reminded within ten minutes."""
    while True:
        try:
            result = await rt.inflight.run(send_reminders(rt, rt.clock.today()))
            if result.reminded:
                log.info("appointment reminders %s: %d", result.as_of, len(result.reminded))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("appointment reminders failed; next in %ds", REMINDER_INTERVAL_SECONDS)
        await asyncio.sleep(REMINDER_INTERVAL_SECONDS)


async def send_reminders(rt: Runtime, as_of: date) -> ReminderResult:
    """Remind every booked appointment whose slot starts on the day after ``as_of``.

    Each reminder is its own transaction: a guarded UPDATE (reminded_at IS NULL, still
    booked) marks it and the event goes into the outbox in the same commit, so two replicas
    running at once remind each appointment once, and a cancelled one never.
    """
    start, end = tomorrow_window(as_of)
    q = (
        select(Appointment.id)
        .join(Slot, Slot.id == Appointment.slot_id)  # type: ignore[arg-type]
        .where(
            Appointment.status == BOOKED,
            Appointment.reminded_at.is_(None),  # type: ignore[union-attr]
            Slot.starts_at >= start,  # type: ignore[arg-type]
            Slot.starts_at < end,  # type: ignore[arg-type]
        )
        .order_by(Appointment.id)
    )
    async with rt.db.session() as s:
        candidates = list((await s.scalars(q)).all())
    result = ReminderResult(as_of=as_of)
    for appointment_id in candidates:
        async with rt.uow() as uow:
            s = uow.session
            marked = await s.execute(
                update(_APPTS)
                .where(
                    _APPTS.c.id == appointment_id,
                    _APPTS.c.status == BOOKED,
                    _APPTS.c.reminded_at.is_(None),
                )
                .values(reminded_at=utcnow())
            )
            if marked.rowcount != 1:  # type: ignore[attr-defined]
                continue  # another replica reminded it, or it was cancelled meanwhile
            a = await _appointment(s, appointment_id)
            slot, station = await _slot_and_station(s, a.slot_id)
            if not start <= slot.starts_at < end:
                await uow.rollback()  # moved to another day since it was selected
                continue
            uow.publish(
                AppointmentReminder(
                    appointment_id=a.id,
                    person_id=a.person_id,
                    station_name=station.name,
                    service=slot.service,
                    service_name=SERVICE_NAMES[slot.service],
                    starts_at=slot.starts_at,
                    ends_at=slot.ends_at,
                    region_code=a.person_region,
                ),
                subject=a.id,
            )
            await uow.commit()
            result.reminded.append(a.id)
    return result
