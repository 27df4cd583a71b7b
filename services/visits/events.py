"""Handlers of the events visits consumes. It publishes none yet."""

from __future__ import annotations

from datetime import date

from services.visits.models import PersonFacts
from shared.events import CloudEvent
from shared.events.envelope import ConsumedData
from shared.events.outbox import UnitOfWork


class PersonRegisteredView(ConsumedData):
    person_id: str
    name: str
    sex: str
    birth_date: date
    region_code: str


async def on_person_registered(uow: UnitOfWork, event: CloudEvent) -> None:
    data = PersonRegisteredView.model_validate(event.data)
    values = data.model_dump(exclude={"person_id"})
    facts = await uow.session.get(PersonFacts, data.person_id)
    if facts is None:
        uow.session.add(PersonFacts(person_id=data.person_id, **values))
    else:
        facts.touch(**values)


HANDLERS = {"lingju.registry.person.registered": on_person_registered}
