"""Residents (居民): registration, reading, changes, search."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from services.registry.api.schemas import PersonIn, PersonOut, PersonPatch
from services.registry.domain.identity import parse_id_number
from services.registry.events import PersonRegistered, PersonUpdated
from services.registry.models import ID_CONTEXT, PHONE_CONTEXT, Person
from services.registry.usecases.common import identity_or_422, require_person_access
from shared.auth import Principal, Role
from shared.concurrency import Expected, versioned_update
from shared.crypto import EVENT_PHONE_CONTEXT, FieldCipher, mask_id_number, mask_phone
from shared.errors import Problem, not_found
from shared.events.outbox import UnitOfWork
from shared.pagination import Page, decode_cursor, encode_cursor


def phone_of(person: Person, cipher: FieldCipher) -> str | None:
    """The person's phone in clear (for the answer's masking, or an event)."""
    if not person.phone_enc:
        return None
    return cipher.decrypt(person.phone_enc, context=PHONE_CONTEXT)


def event_phone(phone: str | None, cipher: FieldCipher) -> str | None:
    """The phone as person events carry it: sealed for notify (shared.crypto)."""
    return cipher.encrypt(phone, context=EVENT_PHONE_CONTEXT) if phone else None


def phone_columns(phone: str | None, cipher: FieldCipher) -> dict[str, str | None]:
    """What the persons row stores for a phone: ciphertext and the blind index of the number."""
    if not phone:
        return {"phone_enc": None, "phone_index": None}
    return {
        "phone_enc": cipher.encrypt(phone, context=PHONE_CONTEXT),
        "phone_index": cipher.blind_index(phone, context=PHONE_CONTEXT),
    }


def person_out(person: Person, cipher: FieldCipher, principal: Principal) -> PersonOut:
    own = principal.person_id is not None and principal.person_id == person.id
    id_shown = None
    if person.id_number_enc:
        id_number = cipher.decrypt(person.id_number_enc, context=ID_CONTEXT)
        sees_full = own or principal.role is Role.admin
        id_shown = id_number if sees_full else mask_id_number(id_number)
    # Minimum necessary: staff (admins too) see the phone's ends, enough to confirm it with
    # the resident; only the resident sees their own in full.
    phone = phone_of(person, cipher)
    return PersonOut(
        id=person.id,
        id_number=id_shown,
        name=person.name,
        sex=person.sex,  # type: ignore[arg-type]
        birth_date=person.birth_date,
        phone=phone if own or phone is None else mask_phone(phone),
        region_code=person.region_code,
        residency=person.residency,
        household_type=person.household_type,
        marital_status=person.marital_status,
        died_on=person.died_on,
        version=person.version,
    )


async def register_person(
    uow: UnitOfWork, cipher: FieldCipher, body: PersonIn, principal: Principal
) -> tuple[int, PersonOut]:
    principal.require_region(body.region_code)
    facts = identity_or_422(body.id_number, uow.clock.today(), "id_number")
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
        **phone_columns(body.phone, cipher),
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
            phone_enc=event_phone(body.phone, cipher),
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


_EDITABLE = ("name", "phone", "region_code", "residency", "household_type", "marital_status")


async def update_person(
    uow: UnitOfWork,
    cipher: FieldCipher,
    person_id: str,
    body: PersonPatch,
    expected: Expected,
    principal: Principal,
) -> PersonOut:
    person = await uow.session.get(Person, person_id)
    if person is None:
        raise not_found("居民", "Person")
    principal.require_region(person.region_code)
    if body.region_code is not None:
        principal.require_region(body.region_code)  # moving someone needs both ends
    if person.version != expected.version:
        raise expected.conflict()
    sent = body.model_dump(exclude_unset=True, exclude={"version"})
    current = {k: getattr(person, k) for k in _EDITABLE if k != "phone"}
    current["phone"] = phone_of(person, cipher)
    changed = {k: v for k, v in sent.items() if k in _EDITABLE and current[k] != v}
    if not changed:
        return person_out(person, cipher, principal)
    person = await change_person(uow, cipher, person.id, changed, expected)
    return person_out(person, cipher, principal)


async def change_person(
    uow: UnitOfWork,
    cipher: FieldCipher,
    person_id: str,
    changed: dict[str, Any],
    expected: Expected | None = None,
) -> Person:
    """Write the changes (version + 1, guarded when a version is expected) and announce them.

    Every change of a person goes through here, so the other services' copies of the person
    (benefits, visits, notify) hear of it, whichever use case made it. ``changed`` is in the
    API's words: a ``phone`` is stored encrypted with its blind index.
    """
    values = dict(changed)
    if "phone" in values:
        values.update(phone_columns(values.pop("phone"), cipher))
    if not await versioned_update(uow.session, Person, person_id, expected=expected, **values):
        raise expected.conflict() if expected is not None else not_found("居民", "Person")
    person = await uow.session.get(Person, person_id)
    assert person is not None
    await uow.session.refresh(person)
    uow.publish(
        PersonUpdated(
            person_id=person.id,
            changed=sorted(changed),
            name=person.name,
            sex=person.sex,  # type: ignore[arg-type]
            birth_date=person.birth_date,
            region_code=person.region_code,
            residency=person.residency,
            household_type=person.household_type,
            marital_status=person.marital_status,
            phone_enc=event_phone(phone_of(person, cipher), cipher),  # for notify's directory
            version=person.version,
        ),
        subject=person.id,
    )
    return person


async def search_persons(
    uow: UnitOfWork,
    cipher: FieldCipher,
    principal: Principal,
    *,
    name: str | None,
    phone: str | None,
    id_number: str | None,
    region: str | None,
    limit: int,
    cursor: str | None,
) -> Page[PersonOut]:
    """For officers and agents, inside their region; the ID number and the phone are found by
    their blind indexes (an exact match, as with any keyed index)."""
    region = region or principal.region
    principal.require_region(region)
    q = select(Person).where(Person.region_code.startswith(region))
    if name:
        q = q.where(Person.name.contains(name))
    if phone:
        index = cipher.blind_index(phone.strip(), context=PHONE_CONTEXT)
        q = q.where(Person.phone_index == index)
    if id_number:
        try:
            number = parse_id_number(id_number).id_number
        except ValueError as e:
            raise Problem(
                422,
                "validation_failed",
                str(e),
                getattr(e, "english", str(e)),
                errors=[{"field": "id_number", "message": str(e)}],
            ) from e
        q = q.where(Person.id_number_index == cipher.blind_index(number, context=ID_CONTEXT))
    after = decode_cursor(cursor, 1)
    if after:
        q = q.where(Person.id > after[0])
    rows = list((await uow.session.scalars(q.order_by(Person.id).limit(limit + 1))).all())
    items = [person_out(p, cipher, principal) for p in rows[:limit]]
    return Page[PersonOut](
        items=items, next_cursor=encode_cursor(items[-1].id) if len(rows) > limit else None
    )
