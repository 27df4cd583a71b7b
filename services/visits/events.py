"""Events visits publishes (tasks, assignments, appointments), its views of the events it
consumes, and their handlers.

Events are not ordered across replicas: a handler missing a person's facts raises
``RetryLater`` and everything it did is rolled back; every handler is safe to apply again
(task generation inserts against a unique key, cancelling only touches open tasks).
"""

from __future__ import annotations

import tomllib
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path

from pydantic import Field

from services.visits import plan_runs, tasks
from services.visits.domain.plans import Plan, parse_plans
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
    service_name: str  # zh, for messages
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
    service_name: str  # zh, for messages
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
    service_name: str  # zh, for messages
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
    service_name: str  # zh, for messages
    starts_at: datetime
    ends_at: datetime
    region_code: str


class TaskDue(EventData):
    """Once per task, when it becomes due (notify reminds the worker and the resident)."""

    TYPE = "lingju.visits.task.due"
    task_id: str
    plan: str
    plan_name: str
    step: str
    step_name: str
    person_id: str
    assignee: str | None = None  # None: nobody is assigned the area yet
    region_code: str
    due_on: date
    overdue_on: date


class TaskOverdue(EventData):
    """Once per task, when it becomes overdue and is still open."""

    TYPE = "lingju.visits.task.overdue"
    task_id: str
    plan: str
    plan_name: str
    step: str
    step_name: str
    person_id: str
    assignee: str | None = None
    region_code: str
    overdue_on: date
    expires_on: date


class ProcedureRecorded(EventData):
    """A procedure was done at a station with the person's consent; visits itself starts the
    follow-up plan in the same transaction (plans.toml, procedures = [...]). What was done is
    health data and stays in visits (encrypted): no consumer needs it, so the event omits it."""

    TYPE = "lingju.visits.procedure.recorded"
    VERSION = 2  # v1 also carried ``procedure`` (the code of what was done)
    procedure_id: str
    person_id: str
    performed_on: date
    region_code: str  # the person's division code
    station_id: str


class VisitRecorded(EventData):
    """A visit was recorded on a task (online or from a phone's offline batch), once per record.
    Findings are health data and stay in visits: the event says only what happened."""

    TYPE = "lingju.visits.visit.recorded"
    visit_id: str
    task_id: str
    plan: str
    step: str
    person_id: str
    region_code: str  # the person's village
    performer_sub: str
    performed_at: datetime
    consent: str  # given | refused (知情选择: a refusal closed the task as declined)
    next_step: str | None = None  # extra_visit | referral
    next_task_id: str | None = None


class AssignmentChanged(EventData):
    """An area's tasks of a tier have a new assignee; ``tasks_moved`` open tasks moved with it
    (the previous and the new assignee's devices are told to sync)."""

    TYPE = "lingju.visits.assignment.changed"
    area_code: str
    tier: str
    assignee_sub: str
    assignee_name: str
    previous_assignee_sub: str | None = None
    tasks_moved: int
    version: int


PLANS_FILE = Path(__file__).with_name("plans.toml")


@lru_cache(maxsize=1)
def plans() -> dict[str, Plan]:
    """The county's plans, read once: the file changes with a deployment, not at run time."""
    return parse_plans(tomllib.loads(PLANS_FILE.read_text("utf-8")))


# -- consumed -------------------------------------------------------------------------------


class PersonRegisteredView(ConsumedData):
    person_id: str
    name: str
    sex: str
    birth_date: date
    region_code: str
    version: int = 1  # person.registered carries none: it is the first


async def on_person_facts(uow: UnitOfWork, event: CloudEvent) -> None:
    """person.registered and person.updated keep visits' copy of the person's facts; a new
    village moves the person's open tasks (or cancels them, out of the county), and the age
    plans that are now theirs start."""
    data = PersonRegisteredView.model_validate(event.data)
    known = await uow.session.get(PersonFacts, data.person_id)
    old_region = known.region_code if known is not None else None
    applied = await apply_copy(
        uow, PersonFacts, "person_id", data.model_dump(exclude={"version"}), data.version
    )
    if not applied:
        return  # an older picture than the copy's: it changes nothing
    await uow.session.flush()
    if old_region is not None and old_region != data.region_code:
        await plan_runs.move_person(uow, data.person_id, old_region, data.region_code)
    await plan_runs.start_age_plans(uow, data.person_id)


class ChildBornView(ConsumedData):
    child_id: str
    mother_id: str
    birth_date: date
    region_code: str


class FamilyRegisteredView(ConsumedData):
    family_id: str
    wife_id: str
    husband_id: str
    marriage_date: date
    region_code: str
    children_ids: list[str] = Field(default_factory=list)


class PersonDiedView(ConsumedData):
    person_id: str
    date_of_death: date


async def on_child_born(uow: UnitOfWork, event: CloudEvent) -> None:
    """Postpartum plan for the mother, newborn plan for the child."""
    data = ChildBornView.model_validate(event.data)
    await tasks.start_plans_for_event(
        uow,
        event,
        {"mother": data.mother_id, "child": data.child_id},
        source_ref=event.subject or data.child_id,
    )


async def on_family_registered(uow: UnitOfWork, event: CloudEvent) -> None:
    """Newly-married counselling and the pre-pregnancy check offer, for the wife."""
    data = FamilyRegisteredView.model_validate(event.data)
    await tasks.start_plans_for_event(
        uow, event, {"wife": data.wife_id}, source_ref=event.subject or data.family_id
    )


async def on_person_died(uow: UnitOfWork, event: CloudEvent) -> None:
    """Record the death and cancel every open task of the person."""
    data = PersonDiedView.model_validate(event.data)
    await tasks.record_death(uow, data.person_id, data.date_of_death)


HANDLERS = {
    "lingju.registry.person.registered": on_person_facts,
    "lingju.registry.person.updated": on_person_facts,
    "lingju.registry.child.born": on_child_born,
    "lingju.registry.family.registered": on_family_registered,
    "lingju.registry.person.died": on_person_died,
}
