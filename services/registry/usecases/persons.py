"""Residents (居民): registration, reading."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from services.registry.api.schemas import PersonIn, PersonOut
from services.registry.domain.identity import parse_id_number
from services.registry.events import PersonRegistered
from services.registry.models import Person
from services.registry.usecases.common import ID_CONTEXT, require_person_access, today
from shared.auth import Principal, Role
from shared.crypto import FieldCipher, mask_id_number
from shared.errors import Problem, not_found
from shared.events.outbox import UnitOfWork


def person_out(person: Person, cipher: FieldCipher, principal: Principal) -> PersonOut:
    id_number = cipher.decrypt(person.id_number_enc, context=ID_CONTEXT)
    sees_full = principal.role is Role.admin or principal.person_id == person.id
    return PersonOut(
        id=person.id,
        id_number=id_number if sees_full else mask_id_number(id_number),
        name=person.name,
        sex=person.sex,  # type: ignore[arg-type]
        birth_date=person.birth_date,
        phone=person.phone,
        region_code=person.region_code,
        residency=person.residency,
        household_type=person.household_type,
        version=person.version,
    )


async def register_person(
    uow: UnitOfWork, cipher: FieldCipher, body: PersonIn, principal: Principal
) -> tuple[int, PersonOut]:
    principal.require_region(body.region_code)
    facts = parse_id_number(body.id_number, today=today())
    index = cipher.blind_index(facts.id_number, context=ID_CONTEXT)
    exists = await uow.session.scalar(select(Person.id).where(Person.id_number_index == index))
    if exists:
        raise Problem(
            409, "duplicate_id_number", "该身份证号已登记", "This ID number is already registered"
        )
    person = Person(
        id=str(uuid.uuid4()),
        id_number_enc=cipher.encrypt(facts.id_number, context=ID_CONTEXT),
        id_number_index=index,
        name=body.name,
        sex=facts.sex,
        birth_date=facts.birth_date,
        phone=body.phone,
        region_code=body.region_code,
        residency=body.residency,
        household_type=body.household_type,
        created_by=principal.sub,
    )
    uow.session.add(person)
    uow.publish(
        PersonRegistered(
            person_id=person.id,
            name=person.name,
            sex=facts.sex,
            birth_date=facts.birth_date,
            region_code=person.region_code,
            residency=person.residency,
            household_type=person.household_type,
            phone=person.phone,
        ),
        subject=person.id,
    )
    return 201, person_out(person, cipher, principal)


async def get_person(
    uow: UnitOfWork, cipher: FieldCipher, person_id: str, principal: Principal
) -> PersonOut:
    person = await uow.session.get(Person, person_id)
    if person is None:
        raise not_found("居民", "Person")
    require_person_access(principal, person)
    return person_out(person, cipher, principal)
