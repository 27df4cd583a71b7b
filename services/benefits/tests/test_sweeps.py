"""The daily enrollment sweep, run for given days through the admin route: the rural reward
at 60 for honor-certificate holders (month edges, twice = once) and age-outs."""

from __future__ import annotations

import calendar
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select

from services.benefits.domain.programs import Period
from services.benefits.models import CertificateFacts
from services.benefits.tests.enrollment_support import (
    ENDED,
    assert_problem,
    born,
    confirmed,
    enrollments,
    honor_family,
    wait_for,
)
from shared.clock import FixedClock
from tests.support import TOWNSHIP, InProcessStack, eventually, published

SWEEP = "/api/v1/admin/sweeps/enrollments"
RURAL = "rural_reward_assistance"


async def sweep(stack: InProcessStack, as_of: str) -> dict[str, Any]:
    r = await stack.benefits.post(SWEEP, params={"as_of": as_of}, headers=stack.auth("admin"))
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def _known(stack: InProcessStack, family: dict[str, Any]) -> None:
    """Wait until benefits has the certificate (and so the links sweeps select by)."""

    async def arrived() -> None:
        assert await stack.count_rows("benefits", "certificate_facts") >= 1
        assert await stack.count_rows("benefits", "child_links") >= 2

    await eventually(arrived)


DAY = date(2026, 6, 15)  # the business day the certificates below are issued on


def _on_day(stack: InProcessStack) -> date:
    """Registry (which issues the certificates) and benefits both stand still on DAY."""
    for service in ("registry", "benefits"):
        stack.rt(service).clock = FixedClock(DAY)
    return DAY


def _next_month() -> Period:
    """The certificates of these tests are issued on DAY: the sweeps run after that, in the
    month the parents turn 60 (nothing is owed before the certificate's month)."""
    return Period.of(DAY).next()


def _last_day(p: Period) -> date:
    return date(p.next().year, p.next().month, 1) - timedelta(days=1)


async def test_the_rural_reward_at_60_for_a_birthday_on_the_1st_and_the_31st(
    stack: InProcessStack,
) -> None:
    _on_day(stack)
    turns = _next_month()
    born_on = date(turns.year - 60, turns.month, 1)
    family = await honor_family(
        stack,
        mother_birth=born_on,
        father_birth=_last_day(Period.of(born_on)),
        child_birth=date(1990, 8, 8),  # grown: the certificate founds no reward of its own
    )
    await _known(stack, family)
    # A rural person of the same age without the certificate is not swept in.
    await stack.register_person(born_on.replace(day=15), "female")
    mother, father = family["mother"]["id"], family["father"]["id"]

    the_day_before = _last_day(turns.previous()).isoformat()
    before = await sweep(stack, the_day_before)
    assert (before["period"], before["created"], before["aged_out"]) == (
        str(turns.previous()),
        [],
        [],
    )
    first = date(turns.year, turns.month, 1).isoformat()
    result = await sweep(stack, first)
    assert result["period"] == str(turns) and len(result["created"]) == 2
    items = await enrollments(stack, program=RURAL)
    assert sorted(e["id"] for e in items) == sorted(result["created"])
    assert sorted(e["person_id"] for e in items) == sorted([mother, father])
    for e in items:
        assert (e["status"], e["source"], e["source_ref"]) == (
            "pending_review",
            "age_sweep",
            e["person_id"],
        )
        assert (e["pays_from"], e["pays_until"], e["prepared_by"]) == (
            str(turns.next()),
            None,
            "system",
        )
        assert e["starts_on"] == first
        assert any("年满 60 周岁" in reason for reason in e["reasons"])
    # Twice is once: the same day, a later day, and after one is confirmed.
    assert (await sweep(stack, first))["created"] == []
    await confirmed(stack, items[0])
    assert (await sweep(stack, _last_day(turns).isoformat()))["created"] == []
    assert len(await enrollments(stack, program=RURAL)) == 2


async def test_the_rural_reward_for_a_29_february_birthday(stack: InProcessStack) -> None:
    _on_day(stack)
    # The first February from next month on whose year, 60 years back, was a leap year.
    turns = next(
        Period(y, 2)
        for y in range(_next_month().year, _next_month().year + 9)
        if calendar.isleap(y - 60) and Period(y, 2) >= _next_month()
    )
    family = await honor_family(
        stack,
        mother_birth=date(turns.year - 60, 2, 29),
        father_birth=date(turns.year - 54, 6, 6),  # 60 only six years later
        child_birth=date(1992, 1, 1),
    )
    await _known(stack, family)
    assert (await sweep(stack, f"{turns.year}-01-31"))["created"] == []
    [created] = (await sweep(stack, f"{turns.year}-02-01"))["created"]
    [e] = await enrollments(stack, program=RURAL)
    assert (e["id"], e["person_id"], e["pays_from"]) == (
        created,
        family["mother"]["id"],
        f"{turns.year}-03",
    )
    assert (await sweep(stack, f"{turns.year}-02-28"))["created"] == []


async def test_a_holder_long_past_60_is_owed_from_the_certificate_month(
    stack: InProcessStack,
) -> None:
    """The certificate is what makes the family eligible: a mother who turned 60 in 2012 and
    got it today is owed from this month, not fourteen years of back pay."""
    today = _on_day(stack)
    family = await honor_family(
        stack, mother_birth=date(1952, 3, 15), father_birth=date(1949, 12, 31)
    )
    await _known(stack, family)
    created = (await sweep(stack, today.isoformat()))["created"]
    assert len(created) == 2
    for e in await enrollments(stack, program=RURAL):
        assert e["pays_from"] == str(Period.of(today)) == "2026-06"


async def test_an_urban_or_revoked_holder_is_not_swept_in(stack: InProcessStack) -> None:
    urban = await honor_family(
        stack,
        mother_birth=date(1966, 3, 1),
        father_birth=date(1966, 3, 2),
        child_birth=date(1990, 8, 8),
        household_type="urban",
    )
    revoked = await honor_family(
        stack,
        mother_birth=date(1966, 3, 1),
        father_birth=date(1966, 3, 2),
        child_birth=date(1991, 8, 8),
    )
    r = await stack.registry.post(
        f"/api/v1/certificates/{revoked['certificate_no']}/revoke",
        json={"reason": "核查不实"},
        headers=stack.auth("township_officer", TOWNSHIP),
    )
    assert r.status_code == 200, r.text

    async def known() -> None:
        assert await stack.count_rows("benefits", "certificate_facts") == 2
        assert await stack.count_rows("benefits", "child_links") == 4
        async with stack.rt("benefits").db.session() as s:
            revoked_on = await s.scalars(select(CertificateFacts.revoked_on))
            assert len([d for d in revoked_on.all() if d is not None]) == 1

    await eventually(known)
    assert urban["status"] == "issued"
    assert (await sweep(stack, "2026-06-01"))["created"] == []


async def test_age_outs_end_active_enrollments_after_their_last_month(
    stack: InProcessStack,
) -> None:
    mother = await stack.register_person(date(1995, 3, 1), "female")
    older = await born(stack, mother["id"], birth_date=date(2023, 11, 20))
    younger = await born(stack, mother["id"], birth_date=date(2023, 10, 2))
    [e] = await wait_for(stack, lambda items: len(items) == 1, person_id=older["child"]["id"])
    [pending] = await wait_for(
        stack, lambda items: len(items) == 1, person_id=younger["child"]["id"]
    )
    # Until the month before the 3rd-birthday month.
    assert (e["pays_from"], e["pays_until"]) == ("2025-01", "2026-10")
    assert pending["pays_until"] == "2026-09"
    await confirmed(stack, e)

    assert (await sweep(stack, "2026-10-31"))["aged_out"] == []
    result = await sweep(stack, "2026-11-01")
    assert result["aged_out"] == [e["id"]]
    [ended] = await enrollments(stack, person_id=older["child"]["id"])
    assert (ended["status"], ended["ended_reason"], ended["ends_after"], ended["pays_until"]) == (
        "ended",
        "age_out",
        "2026-10",
        "2026-10",
    )
    [event] = await published(stack, "benefits", ENDED)
    assert (event["data"]["reason"], event["data"]["ends_after"]) == ("age_out", "2026-10")
    # Only active ones: a pending enrollment waits for its officer (back pay once confirmed).
    [still] = await enrollments(stack, person_id=younger["child"]["id"])
    assert still["status"] == "pending_review"
    assert (await sweep(stack, "2026-12-01"))["aged_out"] == []


async def test_only_an_admin_runs_the_sweep(stack: InProcessStack) -> None:
    r = await stack.benefits.post(SWEEP, headers=stack.auth("county_officer", "330102"))
    assert_problem(r, 403, "forbidden")
    admin = stack.auth("admin")
    r = await stack.benefits.post(SWEEP, params={"as_of": "2026-13-01"}, headers=admin)
    assert_problem(r, 422, "validation_failed")
    r = await stack.benefits.post(SWEEP, headers=stack.auth("admin"))
    assert r.status_code == 200, r.text
    assert r.json()["created"] == [] and r.json()["aged_out"] == []
