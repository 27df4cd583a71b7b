"""benefits' read models, kept from registry's events through the real broker: families,
parent-child links, certificates; tolerant of duplicates and of events out of order."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select

from services.benefits.models import CertificateFacts, ChildLink, FamilyFacts, PersonFacts
from services.benefits.tests.enrollment_support import (
    born,
    certificate_data,
    honor_family,
    person_data,
    send,
)
from tests.support import InProcessStack, eventually
from tests.test_event_delivery import handled

PERSON = "lingju.registry.person.registered"
FAMILY = "lingju.registry.family.registered"
LINKED = "lingju.registry.family.child_linked"
DIED = "lingju.registry.person.died"


async def _links(stack: InProcessStack) -> set[tuple[str, str, str | None]]:
    async with stack.rt("benefits").db.session() as s:
        rows = (await s.scalars(select(ChildLink))).all()
    return {(r.parent_id, r.child_id, r.family_id) for r in rows}


async def _get(stack: InProcessStack, model: Any, key: Any) -> Any:
    async with stack.rt("benefits").db.session() as s:
        return await s.get(model, key)


async def test_a_registered_family_links_both_spouses_to_each_child(
    stack: InProcessStack,
) -> None:
    wife = await stack.register_person(date(1990, 3, 1), "female")
    husband = await stack.register_person(date(1988, 7, 9), "male")
    kids = [
        await stack.register_person(date(2015, 1, 1), "male", phone=None),
        await stack.register_person(date(2018, 5, 5), "female", phone=None),
    ]
    r = await stack.registry.post(
        "/api/v1/families",
        json={
            "wife_id": wife["id"],
            "husband_id": husband["id"],
            "marriage_date": "2014-05-20",
            "children_ids": [k["id"] for k in kids],
        },
        headers=stack.auth("township_officer", "330102001"),
    )
    assert r.status_code == 201, r.text
    family_id = r.json()["id"]

    async def kept() -> None:
        facts = await _get(stack, FamilyFacts, family_id)
        assert facts is not None
        assert (facts.wife_id, facts.husband_id) == (wife["id"], husband["id"])
        assert facts.marriage_date == date(2014, 5, 20)
        assert await _links(stack) == {
            (p, k["id"], family_id) for p in (wife["id"], husband["id"]) for k in kids
        }

    await eventually(kept)
    # The same registration again under a new event id changes nothing.
    await send(
        stack,
        FAMILY,
        {
            "family_id": family_id,
            "wife_id": wife["id"],
            "husband_id": husband["id"],
            "marriage_date": "2014-05-20",
            "region_code": "330102001001",
            "children_ids": [k["id"] for k in kids],
        },
    )
    before = handled(stack, "benefits", "applied")

    async def applied() -> None:
        assert handled(stack, "benefits", "applied") > before

    await eventually(applied)
    assert len(await _links(stack)) == 4
    assert await stack.count_rows("benefits", "family_facts") == 1


async def test_a_child_linked_later_and_a_birth_link_the_parents(stack: InProcessStack) -> None:
    await send(
        stack,
        LINKED,
        {
            "family_id": "fam-1",
            "child_id": "kid-1",
            "wife_id": "mum-1",
            "husband_id": "dad-1",
            "region_code": "330102001001",
        },
    )

    async def linked() -> None:
        assert await _links(stack) == {("mum-1", "kid-1", "fam-1"), ("dad-1", "kid-1", "fam-1")}

    await eventually(linked)
    mother = await stack.register_person(date(1995, 3, 1), "female")
    birth = await born(stack, mother["id"])
    child = birth["child"]["id"]

    async def born_linked() -> None:
        assert (mother["id"], child, None) in await _links(stack)

    await eventually(born_linked)


async def test_a_certificate_is_kept_as_a_fact_with_its_child_links(
    stack: InProcessStack,
) -> None:
    cert = await honor_family(stack)
    holders = [cert["mother"]["id"], cert["father"]["id"]]
    child = cert["child"]["id"]

    async def kept() -> CertificateFacts:
        async with stack.rt("benefits").db.session() as s:
            rows = (await s.scalars(select(CertificateFacts))).all()
        assert len(rows) == 1 and rows[0].certificate_type == "only_child_honor"
        return rows[0]

    row = await eventually(kept)
    assert (row.certificate_no, row.child_id) == (cert["certificate_no"], child)
    assert sorted(row.holder_ids) == sorted(holders)
    assert row.issued_on is not None and row.revoked_on is None
    assert {(p, c) for p, c, _ in await _links(stack)} == {(h, child) for h in holders}


async def test_a_revocation_first_then_its_issue_fills_the_fact_and_founds_nothing(
    stack: InProcessStack,
) -> None:
    for pid, born_on, sex in (("m", date(1975, 5, 1), "female"), ("k", date(2012, 6, 1), "male")):
        await send(stack, PERSON, person_data(pid, born_on, sex))
    data = certificate_data(["m"], "k")
    await send(
        stack,
        "lingju.registry.certificate.revoked",
        {**data, "revoked_on": date.today().isoformat(), "reason": "核查不实"},
    )

    async def revoked() -> None:
        row = await _get(stack, CertificateFacts, data["certificate_id"])
        assert row is not None and row.revoked_on is not None

    await eventually(revoked)
    await send(stack, "lingju.registry.certificate.issued", data)

    async def filled() -> None:
        row = await _get(stack, CertificateFacts, data["certificate_id"])
        assert row.issued_on is not None and row.holder_ids == ["m"]

    await eventually(filled)
    assert await stack.count_rows("benefits", "enrollments") == 0


async def test_a_death_before_the_persons_facts_waits_for_them(stack: InProcessStack) -> None:
    """Out of order: the death first. It is retried, not lost, and applied once the person
    is known (so the death is in the facts eligibility reads)."""
    await send(
        stack,
        DIED,
        {
            "person_id": "early-dead",
            "date_of_death": "2026-03-03",
            "region_code": "330102001001",
            "only_child_of": [],
        },
    )

    async def retried() -> None:
        assert handled(stack, "benefits", "failed") >= 1

    await eventually(retried)
    await send(stack, PERSON, person_data("early-dead", date(1950, 1, 1)))

    async def dead() -> None:
        row = await _get(stack, PersonFacts, "early-dead")
        assert row is not None and row.died_on == date(2026, 3, 3)

    await eventually(dead)
    assert await stack.count_rows("benefits", "dead_letters") == 0
