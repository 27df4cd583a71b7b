"""Enrollments end through a real broker: a certificate revoked, a person died, duplicates,
events out of order."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from services.benefits.models import PersonFacts
from services.benefits.tests.enrollment_support import (
    ENDED,
    certificate_data,
    confirmed,
    person_data,
    send,
    wait_for,
)
from shared.clock import FixedClock
from tests.support import TOWNSHIP, InProcessStack, eventually, published
from tests.test_event_delivery import envelope, handled, publish

PERSON = "lingju.registry.person.registered"
ISSUED = "lingju.registry.certificate.issued"


def _one_pending(items: list[dict[str, Any]]) -> bool:
    return [e["status"] for e in items] == ["pending_review"]


async def _issued_and_enrolled(stack: InProcessStack) -> tuple[dict[str, Any], list[str]]:
    """A certificate's enrollments, confirmed by a second officer."""
    cert = await stack.issue_certificate()
    holders = [cert["mother"]["id"], cert["father"]["id"]]
    for person_id in holders:
        [e] = await wait_for(stack, _one_pending, person_id=person_id)
        await confirmed(stack, e)
    return cert, holders


async def _revoke(stack: InProcessStack, certificate_no: str) -> None:
    r = await stack.registry.post(
        f"/api/v1/certificates/{certificate_no}/revoke",
        json={"reason": "再生育"},
        headers=stack.auth("township_officer", TOWNSHIP),
    )
    assert r.status_code == 200, r.text


async def _die(stack: InProcessStack, person_id: str, on: date) -> None:
    r = await stack.registry.post(
        f"/api/v1/persons/{person_id}/death",
        json={"date_of_death": on.isoformat(), "reported_by": "家属"},
        headers=stack.auth("township_officer", TOWNSHIP),
    )
    assert r.status_code == 201, r.text


async def test_a_revoked_certificate_ends_the_enrollments_it_founded(
    stack: InProcessStack,
) -> None:
    for service in ("registry", "benefits"):
        stack.rt(service).clock = FixedClock(date(2026, 6, 15))
    cert, holders = await _issued_and_enrolled(stack)
    await _revoke(stack, cert["certificate_no"])  # revoked on 2026-06-15
    month = "2026-06"

    async def ended() -> list[dict[str, Any]]:
        items = [e for p in holders for e in await stack.enrollments_of(p)]
        assert [(e["status"], e["ended_reason"], e["ends_after"]) for e in items] == [
            ("ended", "certificate_revoked", month)
        ] * 2, items
        # Every ending caps the window: nothing is owed after the month of revocation.
        assert {e["pays_until"] for e in items} == {month}
        return items

    items = await eventually(ended)
    events = await published(stack, "benefits", ENDED)
    assert sorted(e["data"]["enrollment_id"] for e in events) == sorted(e["id"] for e in items)
    assert {(e["data"]["reason"], e["data"]["ends_after"]) for e in events} == {
        ("certificate_revoked", month)
    }
    assert {e["subject"] for e in events} == {e["id"] for e in items}


async def test_a_death_ends_the_persons_enrollments_once(stack: InProcessStack) -> None:
    cert, (mother, father) = await _issued_and_enrolled(stack)
    died_on = date(2026, 1, 31)
    await _die(stack, mother, died_on)

    async def mother_ended() -> None:
        [e] = await stack.enrollments_of(mother)
        assert (e["status"], e["ended_reason"], e["ends_after"]) == ("ended", "death", "2026-01")
        assert e["pays_until"] == "2026-01"

    await eventually(mother_ended)
    assert [e["status"] for e in await stack.enrollments_of(father)] == ["active"]
    assert len(await published(stack, "benefits", ENDED)) == 1
    async with stack.rt("benefits").db.session() as s:
        facts = await s.get(PersonFacts, mother)
        assert facts is not None and facts.died_on == died_on

    # The same death again under a new event id (a second report path): nothing more ends.
    [died] = await published(stack, "registry", "lingju.registry.person.died")
    duplicate = envelope("lingju.registry.person.died", died["data"])
    inbox_before = await stack.count_rows("benefits", "event_inbox")
    await publish(
        stack.nats.url,
        "lingju.registry.person.died",
        [json.dumps(duplicate).encode()],
        [duplicate["id"]],
    )

    async def applied() -> None:
        assert await stack.count_rows("benefits", "event_inbox") > inbox_before

    await eventually(applied)
    assert len(await published(stack, "benefits", ENDED)) == 1

    # Revoked after the death: the mother's enrollment stays ended by death, the father's ends.
    await _revoke(stack, cert["certificate_no"])

    async def father_ended() -> None:
        [e] = await stack.enrollments_of(father)
        assert (e["status"], e["ended_reason"]) == ("ended", "certificate_revoked")

    await eventually(father_ended)
    [e] = await stack.enrollments_of(mother)
    assert (e["ended_reason"], e["ends_after"]) == ("death", "2026-01")
    events = await published(stack, "benefits", ENDED)
    assert sorted(e["data"]["person_id"] for e in events) == sorted([mother, father])


async def test_a_pending_enrollment_ends_on_revocation_too(stack: InProcessStack) -> None:
    cert = await stack.issue_certificate()
    for who in ("mother", "father"):
        await wait_for(stack, lambda items: len(items) == 1, person_id=cert[who]["id"])
    await _revoke(stack, cert["certificate_no"])
    items = await wait_for(
        stack,
        lambda items: (
            {(e["status"], e["ended_reason"]) for e in items} == {("ended", "certificate_revoked")}
        ),
        program="only_child_parent_reward",
    )
    assert len(items) == 2 and all(e["confirmed_by"] is None for e in items)


async def test_a_certificate_arriving_after_a_death_enrolls_only_the_living(
    stack: InProcessStack,
) -> None:
    """Events are not ordered across replicas: a death seen first keeps the deceased out."""
    person = await stack.register_person(date(1975, 5, 1), "female")
    r = await stack.registry.post(
        f"/api/v1/persons/{person['id']}/death",
        headers=stack.auth("township_officer", "330102001"),
        json={"date_of_death": "2026-01-31", "reported_by": "村委会"},
    )
    assert r.status_code == 201, r.text

    async def death_known() -> None:
        async with stack.rt("benefits").db.session() as s:
            facts = await s.get(PersonFacts, person["id"])
            assert facts is not None and facts.died_on is not None

    await eventually(death_known)
    await send(stack, PERSON, person_data("living-spouse", date(1973, 3, 2), "male"))
    await send(stack, PERSON, person_data("their-child", date(2012, 6, 1), "male"))
    await send(stack, ISSUED, certificate_data([person["id"], "living-spouse"], "their-child"))

    async def enrolled() -> None:
        assert [e["person_id"] for e in await stack.enrollments_of("living-spouse")] == [
            "living-spouse"
        ]

    await eventually(enrolled)
    assert await stack.enrollments_of(person["id"]) == []


async def test_a_certificate_waits_for_its_holders_facts(stack: InProcessStack) -> None:
    """The certificate before the persons (another replica still has them): it is retried,
    and founds the enrollments once the facts are in."""
    await send(stack, ISSUED, certificate_data(["late-m", "late-f"], "late-child"))

    async def retried() -> None:
        assert handled(stack, "benefits", "failed") >= 1

    await eventually(retried)
    assert await stack.count_rows("benefits", "enrollments") == 0
    await send(stack, PERSON, person_data("late-m", date(1975, 5, 1)))
    await send(stack, PERSON, person_data("late-f", date(1973, 3, 2), "male"))
    await send(stack, PERSON, person_data("late-child", date(2012, 6, 1), "male"))
    items = await wait_for(stack, lambda items: len(items) == 2, program="only_child_parent_reward")
    assert sorted(e["person_id"] for e in items) == ["late-f", "late-m"]
    assert await stack.count_rows("benefits", "dead_letters") == 0


async def test_a_revocation_seen_before_its_issue_founds_nothing(stack: InProcessStack) -> None:
    """Out of order: the revocation first, then the issue; no enrollment, nothing to end."""
    issued = envelope(ISSUED, certificate_data(["early-m", "early-f"], "early-child"))
    revoked = envelope(
        "lingju.registry.certificate.revoked",
        {
            "certificate_id": issued["data"]["certificate_id"],
            "certificate_no": issued["data"]["certificate_no"],
            "certificate_type": "only_child_honor",
            "holder_ids": ["early-m", "early-f"],
            "region_code": "330102001001",
            "revoked_on": date.today().isoformat(),
            "reason": "核查不实",
        },
    )
    await publish(
        stack.nats.url,
        "lingju.registry.certificate.revoked",
        [json.dumps(revoked).encode()],
        [revoked["id"]],
    )

    async def recorded() -> None:
        assert await stack.count_rows("benefits", "certificate_facts") == 1

    await eventually(recorded)
    await publish(
        stack.nats.url,
        "lingju.registry.certificate.issued",
        [json.dumps(issued).encode()],
        [issued["id"]],
    )

    async def issue_seen() -> None:
        assert await stack.count_rows("benefits", "event_inbox") == 2

    await eventually(issue_seen)
    assert await stack.count_rows("benefits", "enrollments") == 0
    assert await stack.count_rows("benefits", "dead_letters") == 0
