"""Events visits publishes (appointments) and the handlers of the events it consumes."""

from __future__ import annotations

from datetime import date, datetime

from services.visits.models import PersonFacts
from shared.events import CloudEvent, EventData
from shared.events.envelope import ConsumedData
from shared.events.outbox import UnitOfWork
from shared.readmodel import apply_copy

# -- published ------------------------------------------------------------------------------


class AppointmentBooked(EventData):
    """A seat was taken (notify tells the resident where and when)."""

    TYPE = "lingju.visits.appointment.booked"
    appointment_id: str
    person_id: str
    slot_id: str
    station_id: str
    station_name: str
    service: str
    starts_at: datetime
    ends_at: datetime
    region_code: str  # the person's division code
    booked_by_role: str


class AppointmentRescheduled(EventData):
    """The appointment moved to another slot (same id): the new time replaces the old."""

    TYPE = "lingju.visits.appointment.rescheduled"
    appointment_id: str
    person_id: str
    from_slot_id: str
    slot_id: str
    station_id: str
    station_name: str
    service: str
    starts_at: datetime
    ends_at: datetime
    region_code: str


class AppointmentCancelled(EventData):
    """The seat was given back."""

    TYPE = "lingju.visits.appointment.cancelled"
    appointment_id: str
    person_id: str
    slot_id: str
    station_name: str
    service: str
    starts_at: datetime
    region_code: str
    cancelled_by_role: str


class AppointmentReminder(EventData):
    """Once per booked appointment, on the day before its slot (Asia/Shanghai)."""

    TYPE = "lingju.visits.appointment.reminder"
    appointment_id: str
    person_id: str
    station_name: str
    service: str
    starts_at: datetime
    ends_at: datetime
    region_code: str


# -- consumed -------------------------------------------------------------------------------


class PersonRegisteredView(ConsumedData):
    person_id: str
    name: str
    sex: str
    birth_date: date
    region_code: str
    version: int = 1  # person.registered carries none: it is the first


async def on_person_facts(uow: UnitOfWork, event: CloudEvent) -> None:
    """person.registered and person.updated keep visits' copy of the person's facts."""
    data = PersonRegisteredView.model_validate(event.data)
    await apply_copy(
        uow, PersonFacts, "person_id", data.model_dump(exclude={"version"}), data.version
    )


HANDLERS = {
    "lingju.registry.person.registered": on_person_facts,
    "lingju.registry.person.updated": on_person_facts,
}
