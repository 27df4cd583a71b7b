"""Handlers of the events visits consumes. It publishes none yet."""

from __future__ import annotations

from datetime import date

from services.visits.models import PersonFacts
from shared.events import CloudEvent
from shared.events.envelope import ConsumedData
from shared.events.outbox import UnitOfWork
from shared.readmodel import apply_copy


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
