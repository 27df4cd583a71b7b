"""Load a person's eligibility facts from benefits' own read models (never from the registry).

The read models are fed by registry events (events.py): person facts, child links, and
certificates. What they cannot know (a child's disability, say) an officer declares on a
manual application.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.benefits.domain.eligibility import Child, Facts, Person
from services.benefits.models import CertificateFacts, ChildLink, PersonFacts

ONLY_CHILD_HONOR = "only_child_honor"


def person_of(row: PersonFacts) -> Person:
    return Person(
        sex=row.sex,  # type: ignore[arg-type]
        birth_date=row.birth_date,
        household_type=row.household_type,  # type: ignore[arg-type]
        region_code=row.region_code,
        died_on=row.died_on,
    )


async def children_of(session: AsyncSession, person_id: str) -> list[PersonFacts]:
    """The person's children benefits has facts of, eldest first."""
    rows = await session.scalars(
        select(PersonFacts)
        .join(ChildLink, ChildLink.child_id == PersonFacts.person_id)
        .where(ChildLink.parent_id == person_id)
        .order_by(PersonFacts.birth_date, PersonFacts.person_id)
    )
    return list(rows.all())


async def holds_only_child_honor(
    session: AsyncSession, person_id: str, child_ids: list[str]
) -> bool:
    """Whether the person holds an issued, unrevoked honor certificate for one of the children."""
    if not child_ids:
        return False
    rows = await session.scalars(
        select(CertificateFacts).where(
            CertificateFacts.certificate_type == ONLY_CHILD_HONOR,
            CertificateFacts.child_id.in_(child_ids),  # type: ignore[union-attr]
            CertificateFacts.issued_on.is_not(None),  # type: ignore[union-attr]
            CertificateFacts.revoked_on.is_(None),  # type: ignore[union-attr]
        )
    )
    return any(person_id in c.holder_ids for c in rows.all())


async def load_facts(
    session: AsyncSession, person_id: str, *, disabled_child_ids: frozenset[str] = frozenset()
) -> Facts | None:
    """The facts the eligibility rules take, or None when benefits has no copy of the person.

    ``disabled_child_ids``: children an officer declared disabled (no registry event says so).
    """
    row = await session.get(PersonFacts, person_id)
    if row is None:
        return None
    kids = await children_of(session, person_id)
    children = tuple(
        Child(
            birth_date=k.birth_date,
            alive=k.died_on is None,
            disabled=k.person_id in disabled_child_ids,
            died_on=k.died_on,
        )
        for k in kids
    )
    honor = await holds_only_child_honor(session, person_id, [k.person_id for k in kids])
    return Facts(person=person_of(row), children=children, holds_only_child_honor=honor)
