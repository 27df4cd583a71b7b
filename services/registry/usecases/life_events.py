"""Life events (出生, 死亡): a birth creates the child and links the family; a death is once."""

from __future__ import annotations

import uuid
from typing import Literal

from sqlalchemy import or_, select

from services.registry.api.family_schemas import BirthIn, BirthOut, DeathIn, DeathOut
from services.registry.domain import families as rules
from services.registry.events import ChildBorn, PersonDied, PersonRegistered
from services.registry.models import (
    CAUSE_CONTEXT,
    ID_CONTEXT,
    Birth,
    Death,
    Family,
    FamilyChild,
    Person,
)
from services.registry.usecases.common import identity_or_422
from services.registry.usecases.families import (
    add_child,
    facts,
    family_facts,
    person_or_422,
    rule_problem,
)
from services.registry.usecases.persons import change_person, person_out
from shared.auth import Principal
from shared.concurrency import versioned_update
from shared.crypto import FieldCipher
from shared.errors import Problem, not_found
from shared.events.outbox import UnitOfWork

Source = Literal["officer", "hospital"]


async def register_birth(
    uow: UnitOfWork,
    cipher: FieldCipher,
    body: BirthIn,
    principal: Principal,
    source: Source = "officer",
) -> tuple[int, BirthOut]:
    mother = await person_or_422(uow, body.mother_id, "mother_id")
    principal.require_region(mother.region_code)
    father = await person_or_422(uow, body.father_id, "father_id") if body.father_id else None
    kid = body.child
    today = uow.clock.today()
    identity = identity_or_422(kid.id_number, today, "child.id_number") if kid.id_number else None
    try:
        rules.check_birth(
            facts(mother),
            facts(father) if father else None,
            birth_date=kid.birth_date,
            sex=kid.sex,
            today=today,
            id_birth_date=identity.birth_date if identity else None,
            id_sex=identity.sex if identity else None,
        )
    except rules.RuleBroken as e:
        raise rule_problem(e) from e
    index = None
    if identity is not None:
        index = cipher.blind_index(identity.id_number, context=ID_CONTEXT)
        if await uow.session.scalar(select(Person.id).where(Person.id_number_index == index)):
            raise Problem(
                409,
                "duplicate_id_number",
                "该身份证号已登记",
                "This ID number is already registered",
            )
    if await uow.session.scalar(
        select(Birth.id).where(Birth.birth_certificate_no == kid.birth_certificate_no)
    ):
        raise Problem(
            409,
            "duplicate_birth",
            f"出生医学证明 {kid.birth_certificate_no} 已登记",
            f"Birth certificate {kid.birth_certificate_no} is already registered",
        )
    child = Person(
        id=str(uuid.uuid4()),
        id_number_enc=(
            cipher.encrypt(identity.id_number, context=ID_CONTEXT) if identity else None
        ),
        id_number_index=index,
        name=kid.name,
        sex=kid.sex,
        birth_date=kid.birth_date,
        # A newborn is registered with the mother (随母落户): her village and household type.
        region_code=mother.region_code,
        residency=mother.residency,
        household_type=mother.household_type,
        marital_status="single",
        created_by=principal.sub,
    )
    uow.session.add(child)
    await uow.flush()
    mothers = (await uow.session.scalars(select(Family).where(Family.wife_id == mother.id))).all()
    family_id = rules.family_for_birth(
        await family_facts(uow, mothers), father.id if father else None
    )
    if family_id is not None:
        family = next(f for f in mothers if f.id == family_id)
        await add_child(uow, family, child.id, principal)
    birth = Birth(
        id=str(uuid.uuid4()),
        child_id=child.id,
        mother_id=mother.id,
        father_id=father.id if father else None,
        family_id=family_id,
        birth_date=kid.birth_date,
        hospital=kid.hospital,
        birth_certificate_no=kid.birth_certificate_no,
        source=source,
        recorded_by=principal.sub,
    )
    uow.session.add(birth)
    await uow.flush()
    uow.publish(
        PersonRegistered(
            person_id=child.id,
            name=child.name,
            sex=kid.sex,
            birth_date=child.birth_date,
            region_code=child.region_code,
            residency=child.residency,
            household_type=child.household_type,
        ),
        subject=child.id,
    )
    uow.publish(
        ChildBorn(
            child_id=child.id,
            mother_id=mother.id,
            father_id=birth.father_id,
            birth_date=birth.birth_date,
            sex=kid.sex,
            region_code=child.region_code,
            hospital=birth.hospital,
            birth_certificate_no=birth.birth_certificate_no,
            family_id=family_id,
            source=source,
        ),
        subject=child.id,
    )
    return 201, BirthOut(
        id=birth.id,
        child=person_out(child, cipher, principal),
        mother_id=mother.id,
        father_id=birth.father_id,
        family_id=family_id,
        birth_date=birth.birth_date,
        hospital=birth.hospital,
        birth_certificate_no=birth.birth_certificate_no,
    )


async def record_death(
    uow: UnitOfWork,
    cipher: FieldCipher,
    person: Person,
    body: DeathIn,
    principal: Principal,
    source: Source = "officer",
) -> tuple[int, DeathOut]:
    principal.require_region(person.region_code)
    try:
        rules.check_death(facts(person), body.date_of_death, uow.clock.today())
    except rules.RuleBroken as e:
        raise rule_problem(e) from e
    # Guarded write: of two reports of one death at the same moment, one records it.
    dead = Person.died_on.is_(None)  # type: ignore[union-attr]
    if not await versioned_update(uow.session, Person, person.id, dead, died_on=body.date_of_death):
        raise _already_dead()
    uow.session.add(
        Death(
            person_id=person.id,
            date_of_death=body.date_of_death,
            cause_enc=cipher.encrypt(body.cause, context=CAUSE_CONTEXT) if body.cause else None,
            reported_by=body.reported_by,
            source=source,
            recorded_by=principal.sub,
        )
    )
    as_child = select(FamilyChild.family_id).where(FamilyChild.child_id == person.id)
    related = (
        await uow.session.scalars(
            select(Family).where(
                or_(
                    Family.wife_id == person.id,
                    Family.husband_id == person.id,
                    Family.id.in_(as_child),  # type: ignore[attr-defined]
                )
            )
        )
    ).all()
    known = await family_facts(uow, related)
    only_child_of = rules.only_child_parents(person.id, known)
    for spouse_id in rules.surviving_spouses(person.id, known):
        survivor = await uow.session.get(Person, spouse_id)
        if survivor is not None and survivor.died_on is None:
            await change_person(uow, cipher, spouse_id, {"marital_status": "widowed"})
    await uow.flush()
    uow.publish(
        PersonDied(
            person_id=person.id,
            date_of_death=body.date_of_death,
            region_code=person.region_code,
            only_child_of=only_child_of,
            source=source,
        ),
        subject=person.id,
    )
    return 201, DeathOut(
        person_id=person.id,
        date_of_death=body.date_of_death,
        region_code=person.region_code,
        reported_by=body.reported_by,
        only_child_of=only_child_of,
    )


def _already_dead() -> Problem:
    return Problem(
        409, "already_dead", "该居民的死亡已登记", "This person's death is already recorded"
    )


async def report_death(
    uow: UnitOfWork, cipher: FieldCipher, person_id: str, body: DeathIn, principal: Principal
) -> tuple[int, DeathOut]:
    person = await uow.session.get(Person, person_id)
    if person is None:
        raise not_found("居民", "Person")
    return await record_death(uow, cipher, person, body, principal)
