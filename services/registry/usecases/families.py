"""Families (家庭): registering a couple, linking children, reading the structure."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from services.registry.api.family_schemas import ChildLinkIn, FamilyIn, FamilyOut, MemberOut
from services.registry.domain import families as rules
from services.registry.events import FamilyChildLinked, FamilyRegistered
from services.registry.models import Family, FamilyChild, Person
from services.registry.usecases.common import require_person_access
from services.registry.usecases.persons import change_person
from shared.auth import Principal, Role
from shared.concurrency import versioned_update
from shared.crypto import FieldCipher
from shared.errors import Problem, not_found
from shared.events.outbox import UnitOfWork
from shared.pagination import Page, after_time_cursor, encode_cursor


def rule_problem(e: rules.RuleBroken) -> Problem:
    errors = [{"field": e.field, "message": e.zh}] if e.field else None
    return Problem(e.status, e.code, e.zh, e.en, errors=errors)


def facts(person: Person) -> rules.PersonFacts:
    return rules.PersonFacts(
        id=person.id, sex=person.sex, birth_date=person.birth_date, died_on=person.died_on
    )


async def person_or_422(uow: UnitOfWork, person_id: str, field: str) -> Person:
    person = await uow.session.get(Person, person_id)
    if person is None:
        raise Problem(
            422,
            "unknown_person",
            f"{field} 对应的居民不存在",
            f"{field}: person not found",
            errors=[{"field": field, "message": "居民不存在"}],
        )
    return person


async def family_facts(uow: UnitOfWork, families: Sequence[Family]) -> list[rules.FamilyFacts]:
    ids = [f.id for f in families]
    children: dict[str, list[str]] = {i: [] for i in ids}
    if ids:
        rows = await uow.session.execute(
            select(FamilyChild.family_id, FamilyChild.child_id).where(
                FamilyChild.family_id.in_(ids)  # type: ignore[attr-defined]
            )
        )
        for family_id, child_id in rows.all():
            children[family_id].append(child_id)
    return [
        rules.FamilyFacts(
            id=f.id,
            wife_id=f.wife_id,
            husband_id=f.husband_id,
            marriage_date=f.marriage_date,
            child_ids=tuple(children[f.id]),
            status=f.status,
        )
        for f in families
    ]


def _member(person: Person) -> MemberOut:
    return MemberOut(
        id=person.id,
        name=person.name,
        sex=person.sex,  # type: ignore[arg-type]
        birth_date=person.birth_date,
        alive=person.died_on is None,
        died_on=person.died_on,
    )


async def family_out(uow: UnitOfWork, family: Family) -> FamilyOut:
    child_ids = (
        await uow.session.scalars(
            select(FamilyChild.child_id).where(FamilyChild.family_id == family.id)
        )
    ).all()
    ids = [family.wife_id, family.husband_id, *child_ids]
    people = {
        p.id: p
        for p in (
            await uow.session.scalars(select(Person).where(Person.id.in_(ids)))  # type: ignore[attr-defined]
        ).all()
    }
    children = sorted((people[c] for c in child_ids), key=lambda p: (p.birth_date, p.id))
    shape = rules.structure(facts(c) for c in children)
    return FamilyOut(
        id=family.id,
        wife_id=family.wife_id,
        husband_id=family.husband_id,
        marriage_date=family.marriage_date,
        region_code=family.region_code,
        status=family.status,  # type: ignore[arg-type]
        wife=_member(people[family.wife_id]),
        husband=_member(people[family.husband_id]),
        children=[_member(c) for c in children],
        children_count=shape.children_count,
        living_children_count=shape.living_children_count,
        sons=shape.sons,
        daughters=shape.daughters,
        version=family.version,
        created_at=family.created_at,
    )


async def register_family(
    uow: UnitOfWork, cipher: FieldCipher, body: FamilyIn, principal: Principal
) -> tuple[int, FamilyOut]:
    wife = await person_or_422(uow, body.wife_id, "wife_id")
    husband = await person_or_422(uow, body.husband_id, "husband_id")
    principal.require_region(wife.region_code)
    principal.require_region(husband.region_code)
    children = [
        await person_or_422(uow, cid, f"children_ids.{i}")
        for i, cid in enumerate(body.children_ids)
    ]
    try:
        rules.check_couple(facts(wife), facts(husband), body.marriage_date, uow.clock.today())
        rules.check_children(facts(wife), facts(husband), [facts(c) for c in children])
    except rules.RuleBroken as e:
        raise rule_problem(e) from e
    key = rules.couple_key(wife.id, husband.id)
    if await uow.session.scalar(select(Family.id).where(Family.couple_key == key)):
        raise _family_exists()
    family = Family(
        id=str(uuid.uuid4()),
        wife_id=wife.id,
        husband_id=husband.id,
        marriage_date=body.marriage_date,
        region_code=wife.region_code,
        couple_key=key,
        created_by=principal.sub,
    )
    uow.session.add(family)
    try:
        await uow.flush()  # the unique couple key settles a concurrent registration
    except IntegrityError as e:
        raise _family_exists() from e
    for child in children:
        uow.session.add(
            FamilyChild(family_id=family.id, child_id=child.id, linked_by=principal.sub)
        )
    for spouse, partner in ((wife, husband), (husband, wife)):
        status = rules.marital_status_after_marriage(facts(spouse), facts(partner))
        await change_person(uow, cipher, spouse.id, {"marital_status": status})
    await uow.flush()
    uow.publish(
        FamilyRegistered(
            family_id=family.id,
            wife_id=wife.id,
            husband_id=husband.id,
            marriage_date=family.marriage_date,
            region_code=family.region_code,
            children_ids=[c.id for c in children],
        ),
        subject=family.id,
    )
    return 201, await family_out(uow, family)


def _family_exists() -> Problem:
    return Problem(
        409,
        "family_exists",
        "这对夫妻已登记为家庭",
        "This couple is already registered as a family",
    )


async def _family_or_404(uow: UnitOfWork, family_id: str) -> Family:
    family = await uow.session.get(Family, family_id)
    if family is None:
        raise not_found("家庭", "Family")
    return family


async def require_family_access(uow: UnitOfWork, principal: Principal, family: Family) -> None:
    """Residents see the families they belong to; everyone else, the families of their region."""
    if principal.role is not Role.resident:
        principal.require_region(family.region_code)
        return
    me = principal.person_id
    if me in (family.wife_id, family.husband_id):
        return
    linked = await uow.session.scalar(
        select(FamilyChild.child_id).where(
            FamilyChild.family_id == family.id, FamilyChild.child_id == me
        )
    )
    if linked is None:
        raise Problem(
            403, "forbidden", "只能查看本人所在的家庭", "Residents see only their own family"
        )


async def get_family(uow: UnitOfWork, family_id: str, principal: Principal) -> FamilyOut:
    family = await _family_or_404(uow, family_id)
    await require_family_access(uow, principal, family)
    return await family_out(uow, family)


async def families_of(
    uow: UnitOfWork, person_id: str, principal: Principal, limit: int, cursor: str | None
) -> Page[FamilyOut]:
    """The families a person belongs to, as a spouse or as a child, oldest record first."""
    person = await uow.session.get(Person, person_id)
    if person is None:
        raise not_found("居民", "Person")
    require_person_access(principal, person)
    as_child = select(FamilyChild.family_id).where(FamilyChild.child_id == person_id)
    q = (
        select(Family)
        .where(
            or_(
                Family.wife_id == person_id,
                Family.husband_id == person_id,
                Family.id.in_(as_child),  # type: ignore[attr-defined]
            )
        )
        .order_by(Family.created_at, Family.id)
        .limit(limit + 1)
    )
    if principal.role is not Role.resident and principal.region:
        # A family lives where the wife does: a child's family may be outside the region.
        q = q.where(Family.region_code.startswith(principal.region))  # type: ignore[attr-defined]
    after = after_time_cursor(cursor, Family.created_at, Family.id)
    if after is not None:
        q = q.where(after)
    rows = (await uow.session.scalars(q)).all()
    items = [await family_out(uow, f) for f in rows[:limit]]
    last = rows[limit - 1] if len(rows) > limit else None
    nxt = encode_cursor(last.created_at.isoformat(), last.id) if last else None
    return Page[FamilyOut](items=items, next_cursor=nxt)


async def link_child(
    uow: UnitOfWork, family_id: str, body: ChildLinkIn, principal: Principal
) -> tuple[int, FamilyOut]:
    family = await _family_or_404(uow, family_id)
    principal.require_region(family.region_code)
    child = await person_or_422(uow, body.child_id, "child_id")
    wife = await uow.session.get(Person, family.wife_id)
    husband = await uow.session.get(Person, family.husband_id)
    assert wife is not None and husband is not None  # foreign keys
    (current,) = await family_facts(uow, [family])
    try:
        rules.check_new_child(current, facts(wife), facts(husband), facts(child))
    except rules.RuleBroken as e:
        raise rule_problem(e) from e
    await add_child(uow, family, child.id, principal)
    uow.publish(
        FamilyChildLinked(
            family_id=family.id,
            child_id=child.id,
            wife_id=family.wife_id,
            husband_id=family.husband_id,
            region_code=family.region_code,
        ),
        subject=family.id,
    )
    return 201, await family_out(uow, family)


async def add_child(uow: UnitOfWork, family: Family, child_id: str, principal: Principal) -> None:
    uow.session.add(FamilyChild(family_id=family.id, child_id=child_id, linked_by=principal.sub))
    try:
        await uow.flush()  # the primary key settles a concurrent link of the same child
    except IntegrityError as e:
        raise Problem(
            409,
            "child_already_linked",
            "该子女已在此家庭中",
            "The child is already linked to this family",
        ) from e
    await versioned_update(uow.session, Family, family.id)
    await uow.session.refresh(family)
